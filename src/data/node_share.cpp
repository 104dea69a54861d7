#include "data/node_share.h"

#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/csv_parser.h"

namespace sx::data {
namespace {

constexpr uint64_t kCorporaMagic = 0x5358'434f'5250'0001;  // "SXCORP" v1
constexpr uint64_t kPairsMagic = 0x5358'5041'4952'0001;    // "SXPAIR" v1

// Lays out an image: every array 8-byte aligned after its element count. Without an output
// it only measures, so the same code sizes the image and then fills it.
class ImageWriter {
 public:
  explicit ImageWriter(char* out) : out_(out) {}
  bool writing() const { return out_ != nullptr; }
  size_t size() const { return at_; }

  // Room for n values (nullptr when measuring).
  template <class T>
  T* room(size_t n) {
    at_ = (at_ + 7) & ~size_t(7);
    T* p = out_ ? reinterpret_cast<T*>(out_ + at_) : nullptr;
    at_ += n * sizeof(T);
    return p;
  }
  void u64(uint64_t value) {
    if (uint64_t* p = room<uint64_t>(1)) *p = value;
  }
  // The count, then the values.
  template <class T>
  T* array(size_t n) {
    u64(n);
    return room<T>(n);
  }
  template <class T>
  void values(const T* data, size_t n) {
    T* p = array<T>(n);
    if (p && n) std::memcpy(static_cast<void*>(p), data, n * sizeof(T));
  }
  void string(const std::string& s) { values(s.data(), s.size()); }

 private:
  char* out_;
  size_t at_ = 0;
};

// Reads what ImageWriter laid out; arrays come back as columns viewing the image.
class ImageReader {
 public:
  ImageReader(std::shared_ptr<const void> image, size_t size)
      : image_(std::move(image)), base_(static_cast<const char*>(image_.get())), size_(size) {}
  const std::shared_ptr<const void>& image() const { return image_; }

  uint64_t u64() { return *room<uint64_t>(1); }
  template <class T>
  Column<T> column() {
    const uint64_t n = u64();
    return Column<T>::view(room<T>(n), n, image_);
  }
  std::string string() {
    Column<char> c = column<char>();
    return std::string(c.data(), c.size());
  }

 private:
  template <class T>
  const T* room(uint64_t n) {
    at_ = (at_ + 7) & ~size_t(7);
    if (n > (size_ - std::min(size_, at_)) / sizeof(T))
      throw std::runtime_error("node-shared image: read past its end (builder and reader differ)");
    const T* p = reinterpret_cast<const T*>(base_ + at_);
    at_ += n * sizeof(T);
    return p;
  }

  std::shared_ptr<const void> image_;
  const char* base_;
  size_t size_;
  size_t at_ = 0;
};

// The file whose mapping holds `text`, or files.size() when none does (a copied text).
size_t source_of(std::string_view text, const std::vector<TextFile>& files) {
  const auto p = reinterpret_cast<uintptr_t>(text.data());
  for (size_t k = 0; k < files.size(); ++k) {
    const auto b = reinterpret_cast<uintptr_t>(files[k].bytes.data());
    if (p >= b && p + text.size() <= b + files[k].bytes.size()) return k;
  }
  return files.size();
}

// Texts as refs: into the files (by their index), else into an arena of copies that follows.
void write_texts(ImageWriter& w, const TextColumn& texts, const std::vector<TextFile>& files) {
  const size_t n = texts.size();
  TextRef* refs = w.array<TextRef>(n);
  uint64_t copied = 0;
  for (size_t i = 0; i < n; ++i) {
    if (texts[i].size() > UINT32_MAX) throw std::runtime_error("text too long to share");
    if (source_of(texts[i], files) == files.size()) copied += texts[i].size();
  }
  char* arena = w.array<char>(copied);
  if (!w.writing()) return;
  uint64_t at = 0;
  for (size_t i = 0; i < n; ++i) {
    const std::string_view text = texts[i];
    const size_t k = source_of(text, files);
    if (k < files.size()) {
      refs[i] = {uint64_t(text.data() - files[k].bytes.data()), uint32_t(text.size()), uint32_t(k)};
    } else {
      if (!text.empty()) std::memcpy(arena + at, text.data(), text.size());
      refs[i] = {at, uint32_t(text.size()), uint32_t(k)};
      at += text.size();
    }
  }
}

// `maps`: this process's mappings of the image's files, in their order.
TextColumn read_texts(ImageReader& r, const std::vector<std::shared_ptr<MappedFile>>& maps) {
  Column<TextRef> refs = r.column<TextRef>();
  Column<char> arena = r.column<char>();
  std::vector<const char*> bases;
  std::vector<uint64_t> sizes;
  std::vector<std::shared_ptr<const void>> storage{r.image()};
  for (const auto& m : maps) {
    bases.push_back(m->bytes().data());
    sizes.push_back(m->bytes().size());
    storage.push_back(m);
  }
  bases.push_back(arena.data());
  sizes.push_back(arena.size());
  for (const TextRef& ref : refs)
    if (ref.source >= bases.size() || ref.offset + ref.length > sizes[ref.source])
      throw std::runtime_error("node-shared corpus: a text outside its source");
  return TextColumn::over(std::move(refs), std::move(bases), std::move(storage));
}

void write_langs(ImageWriter& w, const LangColumn& langs) {
  w.u64(langs.names().size());
  for (const std::string& name : langs.names()) w.string(name);
  w.values(langs.codes().data(), langs.size());
}

LangColumn read_langs(ImageReader& r) {
  std::vector<std::string> names(r.u64());
  for (std::string& name : names) name = r.string();
  Column<uint32_t> codes = r.column<uint32_t>();
  for (uint32_t code : codes)
    if (code >= names.size()) throw std::runtime_error("node-shared corpus: a bad language code");
  return LangColumn::over(std::move(codes), std::move(names));
}

template <class T>
void write_column(ImageWriter& w, const Column<T>& c) {
  w.values(c.data(), c.size());
}

void write_labeled(ImageWriter& w, const LabeledCorpus& c, const std::vector<TextFile>& files) {
  write_texts(w, c.texts, files);
  write_column(w, c.labels);
  write_langs(w, c.langs);
  write_column(w, c.rows);
}

LabeledCorpus read_labeled(ImageReader& r, const std::vector<std::shared_ptr<MappedFile>>& maps) {
  LabeledCorpus c;
  c.texts = read_texts(r, maps);
  c.labels = r.column<uint8_t>();
  c.langs = read_langs(r);
  c.rows = r.column<int64_t>();
  return c;
}

void write_test(ImageWriter& w, const TestCorpus& c, const std::vector<TextFile>& files) {
  write_column(w, c.ids);
  write_texts(w, c.texts, files);
  write_langs(w, c.langs);
  write_column(w, c.rows);
  w.u64(c.skipped);
}

TestCorpus read_test(ImageReader& r, const std::vector<std::shared_ptr<MappedFile>>& maps) {
  TestCorpus c;
  c.ids = r.column<int64_t>();
  c.texts = read_texts(r, maps);
  c.langs = read_langs(r);
  c.rows = r.column<int64_t>();
  c.skipped = r.u64();
  return c;
}

// The files every text column of the corpora may view, each once.
std::vector<TextFile> files_of(const CorpusSplit& split, const std::optional<TestCorpus>& test) {
  std::vector<TextFile> out;
  auto add = [&](const TextColumn& texts) {
    for (const TextFile& f : texts.files())
      if (source_of(f.bytes, out) == out.size()) out.push_back(f);
  };
  add(split.multilingual.texts);
  add(split.validation.texts);
  add(split.train.texts);
  if (test) add(test->texts);
  return out;
}

void write_corpora(ImageWriter& w, uint64_t size, const CorpusSplit& split,
                   const std::optional<TestCorpus>& test) {
  const std::vector<TextFile> files = files_of(split, test);
  w.u64(kCorporaMagic);
  w.u64(size);
  w.u64(files.size());
  for (const TextFile& f : files) {
    w.string(f.path);
    w.u64(f.bytes.size());
  }
  write_labeled(w, split.multilingual, files);
  write_labeled(w, split.validation, files);
  write_labeled(w, split.train, files);
  w.u64(split.max_size);
  w.string(split.largest_language);
  w.u64(test ? 1 : 0);
  if (test) write_test(w, *test, files);
}

// This process's mapping of each file of the image, checked against the builder's size.
std::vector<std::shared_ptr<MappedFile>> map_files(ImageReader& r) {
  std::vector<std::shared_ptr<MappedFile>> maps(r.u64());
  for (auto& m : maps) {
    const std::string path = r.string();
    const uint64_t size = r.u64();
    m = std::make_shared<MappedFile>(path);
    if (m->bytes().size() != size)
      throw std::runtime_error(path + " has " + std::to_string(m->bytes().size()) +
                               " bytes, but the node's builder loaded " + std::to_string(size) +
                               ": the file changed during set-up");
  }
  return maps;
}

// The image's size, from its header (checked against the expected magic).
ImageReader open_image(std::shared_ptr<const void> image, uint64_t magic) {
  const auto* header = static_cast<const uint64_t*>(image.get());
  if (header[0] != magic) throw std::runtime_error("node-shared image of another kind");
  const uint64_t size = header[1];
  ImageReader r(std::move(image), size);
  r.u64();  // magic
  r.u64();  // size
  return r;
}

}  // namespace

void share_corpora(CorpusSplit& split, std::optional<TestCorpus>& test, NodeMemory& node) {
  uint64_t bytes = 0;
  if (node.builder()) {
    ImageWriter measure(nullptr);
    write_corpora(measure, 0, split, test);
    bytes = measure.size();
  }
  ImageReader r = open_image(node.publish(bytes,
                                          [&](void* out) {
                                            ImageWriter w(static_cast<char*>(out));
                                            write_corpora(w, bytes, split, test);
                                          }),
                             kCorporaMagic);
  const std::vector<std::shared_ptr<MappedFile>> maps = map_files(r);
  CorpusSplit shared;
  shared.multilingual = read_labeled(r, maps);
  shared.validation = read_labeled(r, maps);
  shared.train = read_labeled(r, maps);
  shared.max_size = r.u64();
  shared.largest_language = r.string();
  std::optional<TestCorpus> shared_test;
  if (r.u64()) shared_test = read_test(r, maps);
  split = std::move(shared);
  test = std::move(shared_test);
}

PairList share_pairs(const PairList& pairs, NodeMemory& node) {
  auto write = [&](ImageWriter& w, uint64_t size) {
    w.u64(kPairsMagic);
    w.u64(size);
    w.values(pairs.data(), pairs.size());
  };
  uint64_t bytes = 0;
  if (node.builder()) {
    ImageWriter measure(nullptr);
    write(measure, 0);
    bytes = measure.size();
  }
  ImageReader r = open_image(node.publish(bytes,
                                          [&](void* out) {
                                            ImageWriter w(static_cast<char*>(out));
                                            write(w, bytes);
                                          }),
                             kPairsMagic);
  return r.column<Pair>();
}

}  // namespace sx::data
