#include "data/corpus.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace sx::data {

std::string_view TextArena::copy(std::string_view text) {
  constexpr size_t kBlock = 1u << 20;
  if (text.empty()) return {};  // nothing to store, and maybe no block yet to point into
  if (capacity_ - used_ < text.size()) {
    capacity_ = std::max(kBlock, text.size());
    blocks_.emplace_back(new char[capacity_]);
    used_ = 0;
  }
  char* out = blocks_.back().get() + used_;
  std::memcpy(out, text.data(), text.size());
  used_ += text.size();
  bytes_ += text.size();
  return {out, text.size()};
}

void TextColumn::check_appendable() const {
  if (shared_) throw std::logic_error("a text column viewing shared memory is read-only");
}

std::vector<std::string_view> TextColumn::views(size_t begin, size_t end) const {
  end = std::min(end, size());
  std::vector<std::string_view> out;
  out.reserve(end > begin ? end - begin : 0);
  for (size_t i = begin; i < end; ++i) out.push_back((*this)[i]);
  return out;
}

void TextColumn::push_back(std::string_view text) {
  check_appendable();
  if (!own_) {
    own_ = std::make_shared<TextArena>();
    storage_.push_back(own_);
  }
  views_.push_back(own_->copy(text));
}

void TextColumn::keep(std::shared_ptr<const void> storage) {
  if (std::find(storage_.begin(), storage_.end(), storage) == storage_.end())
    storage_.push_back(std::move(storage));
}

void TextColumn::keep_file(const std::string& path, std::string_view bytes,
                           std::shared_ptr<const void> mapping) {
  keep(std::move(mapping));
  for (const TextFile& f : files_)
    if (f.bytes.data() == bytes.data() && f.bytes.size() == bytes.size()) return;
  files_.push_back({path, bytes});
}

TextColumn TextColumn::over(Column<TextRef> refs, std::vector<const char*> bases,
                            std::vector<std::shared_ptr<const void>> storage) {
  TextColumn c;
  c.shared_ = true;
  c.refs_ = std::move(refs);
  c.bases_ = std::move(bases);
  c.storage_ = std::move(storage);
  return c;
}

void TextColumn::keep_all_of(const TextColumn& other) {
  // Called once per row by subset builders: skip the merge when nothing is new.
  const auto& theirs = other.storage_;
  if (kept_memo_.size() == theirs.size() &&
      std::equal(theirs.begin(), theirs.end(), kept_memo_.begin(),
                 [](const std::shared_ptr<const void>& s, const void* p) { return s.get() == p; }))
    return;
  kept_memo_.clear();
  for (const auto& s : theirs) {
    keep(s);
    kept_memo_.push_back(s.get());
  }
  for (const TextFile& f : other.files_)
    if (std::none_of(files_.begin(), files_.end(),
                     [&](const TextFile& mine) { return mine.bytes.data() == f.bytes.data(); }))
      files_.push_back(f);
}

void TextColumn::push_back_from(const TextColumn& other, size_t i) {
  check_appendable();
  keep_all_of(other);
  views_.push_back(other[i]);
}

void LangColumn::push_back(std::string_view lang) {
  // Rows come in runs of one language: try the last row's first.
  if (!codes_.empty() && names_[codes_.back()] == lang) {
    codes_.push_back(codes_.back());
    return;
  }
  auto [it, added] = index_.emplace(std::string(lang), static_cast<uint32_t>(names_.size()));
  if (added) names_.emplace_back(lang);
  codes_.push_back(it->second);
}

std::vector<std::string> LangColumn::strings() const {
  std::vector<std::string> out;
  out.reserve(size());
  for (uint32_t code : codes_) out.push_back(names_[code]);
  return out;
}

LangColumn LangColumn::over(Column<uint32_t> codes, std::vector<std::string> names) {
  LangColumn c;
  c.codes_ = std::move(codes);
  c.names_ = std::move(names);
  for (uint32_t k = 0; k < c.names_.size(); ++k) c.index_.emplace(c.names_[k], k);
  return c;
}

bool operator==(const LangColumn& a, const std::vector<std::string>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < b.size(); ++i)
    if (a[i] != b[i]) return false;
  return true;
}

void LabeledCorpus::reserve(size_t n) {
  texts.reserve(n);
  labels.reserve(n);
  langs.reserve(n);
  rows.reserve(n);
}

void LabeledCorpus::push_back_from(const LabeledCorpus& other, size_t i) {
  push_back_from(other, i, other.langs[i]);
}

void LabeledCorpus::push_back_from(const LabeledCorpus& other, size_t i, std::string_view lang) {
  texts.push_back_from(other.texts, i);
  labels.push_back(other.labels[i]);
  langs.push_back(lang);
  rows.push_back(other.rows[i]);
}

std::vector<std::string> LabeledCorpus::languages() const {
  return langs.names();
}

std::map<std::string, std::array<size_t, 2>> LabeledCorpus::label_counts() const {
  std::map<std::string, std::array<size_t, 2>> counts;
  for (size_t i = 0; i < size(); ++i) ++counts[langs[i]][labels[i] ? 1 : 0];
  return counts;
}

}  // namespace sx::data
