#include "data/csv_parser.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/error.h"
#include "core/mapping_guard.h"

namespace sx::data {

MappedFile::MappedFile(const std::string& path, bool read_ahead) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
    throw UserError(path + ": is a directory, expected a CSV file");
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw UserError(path + ": cannot open: " + std::strerror(errno));
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw UserError(path + ": cannot open: " + std::strerror(err));
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    const int err = errno;
    ::close(fd);
    if (p == MAP_FAILED) throw UserError(path + ": cannot map: " + std::strerror(err));
    if (read_ahead) ::madvise(p, size_, MADV_WILLNEED);  // the parsing threads fault pages in
    data_ = static_cast<const char*>(p);
    guard_ = guard_mapping(data_, size_, path);
  } else {
    ::close(fd);
  }
}

MappedFile::~MappedFile() {
  unguard_mapping(guard_);
  if (data_) ::munmap(const_cast<char*>(data_), size_);
}

void decode_csv_field(const CsvField& field, std::string& out, size_t max_bytes) {
  out.clear();
  // Appends at most one byte past max_bytes (enough to know the value was cut): bounded
  // memory whatever the field's size.
  auto append = [&](const char* b, const char* e) {
    const size_t room = max_bytes + 1 - std::min(out.size(), max_bytes + 1);
    out.append(b, std::min(size_t(e - b), room));
  };
  const char* p = field.begin;
  const char* e = field.end;
  if (p < e && *p == '"') {
    ++p;
    while (p < e && out.size() <= max_bytes) {
      const char* q = static_cast<const char*>(std::memchr(p, '"', size_t(e - p)));
      if (!q) {  // unterminated: the rest is the value
        append(p, e);
        p = e;
        break;
      }
      append(p, q);
      if (q + 1 < e && q[1] == '"') {  // doubled: a literal quote
        append(q, q + 1);
        p = q + 2;
        continue;
      }
      p = q + 1;  // closing quote; text after it is kept, as Python's csv module keeps it
      break;
    }
  }
  append(p, e);
  if (out.size() > max_bytes) out.resize(max_bytes);
}

std::string_view csv_field_value(const CsvField& field, std::string& scratch, size_t max_bytes) {
  if (field.kind != CsvFieldKind::kEscaped) {
    std::string_view v = field.view();
    return v.substr(0, std::min(v.size(), max_bytes));
  }
  decode_csv_field(field, scratch, max_bytes);
  return scratch;
}

namespace {

#if defined(__SSE2__)
__m128i load16(const char* p) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}
unsigned bytes_equal(__m128i v, char c) {
  return unsigned(_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(c))));
}
int count_bits(unsigned mask) {
  int n = 0;
  for (; mask; mask &= mask - 1) ++n;
  return n;
}
#endif

// The first '"' in [p, e), or e. Adds the '\n' before it to `lines` and clears `ascii` when
// a byte before it is not ASCII: one pass over the bytes of a quoted text.
const char* quoted_run_end(const char* p, const char* e, uint64_t& lines, bool& ascii) {
#if defined(__SSE2__)
  unsigned high = 0;  // the non-ASCII bytes seen, as a mask
  for (; e - p >= 16; p += 16) {
    const __m128i v = load16(p);
    const unsigned quote = bytes_equal(v, '"');
    const unsigned before = quote ? (quote & (0u - quote)) - 1 : 0xFFFFu;
    lines += count_bits(bytes_equal(v, '\n') & before);
    high |= unsigned(_mm_movemask_epi8(v)) & before;
    if (quote) {
      if (high) ascii = false;
      return p + __builtin_ctz(quote);
    }
  }
  if (high) ascii = false;
#endif
  for (; p < e && *p != '"'; ++p) {
    if (*p == '\n') ++lines;
    if (static_cast<unsigned char>(*p) >= 0x80) ascii = false;
  }
  return p;
}

// The bytes that end an unquoted run (',', '\n', '\r') and the non-ASCII bytes among the 64
// from `base` (fewer at the end of the input), a bit each: a run of short unquoted fields
// finds its ends with one scan, not one per field.
struct StopBlock {
  const char* base = nullptr;
  const char* limit = nullptr;  // base + 64, or the end of the input
  uint64_t stops = 0, high = 0;
  bool holds(const char* p) const {
    return uintptr_t(p) - uintptr_t(base) < uintptr_t(limit) - uintptr_t(base);
  }
};

void scan_block(const char* p, const char* e, StopBlock& b) {
  b.base = p;
  b.limit = e - p >= 64 ? p + 64 : e;
  char padded[64];  // the last bytes of the input, then zeros (neither stops nor high)
  if (b.limit != p + 64) {
    std::memset(padded, 0, sizeof padded);
    std::memcpy(padded, p, size_t(e - p));
    p = padded;
  }
  b.stops = b.high = 0;
#if defined(__SSE2__)
  for (int k = 0; k < 4; ++k) {
    const __m128i v = load16(p + 16 * k);
    const unsigned stops = bytes_equal(v, ',') | bytes_equal(v, '\n') | bytes_equal(v, '\r');
    b.stops |= uint64_t(stops) << (16 * k);
    b.high |= uint64_t(unsigned(_mm_movemask_epi8(v))) << (16 * k);
  }
#else
  for (int k = 0; k < 64; ++k) {
    const char c = p[k];
    if (c == ',' || c == '\n' || c == '\r') b.stops |= uint64_t(1) << k;
    if (static_cast<unsigned char>(c) >= 0x80) b.high |= uint64_t(1) << k;
  }
#endif
}

// The end of an unquoted run: the first ',', '\n' or '\r' (or e); clears `ascii` when a byte
// before it is not ASCII. `block` carries the scan of the bytes around p from field to field.
const char* unquoted_end(const char* p, const char* e, StopBlock& block, bool& ascii) {
  while (true) {
    if (!block.holds(p)) {
      if (p == e) return e;
      scan_block(p, e, block);
    }
    const unsigned at = unsigned(p - block.base);
    const uint64_t stops = block.stops >> at, high = block.high >> at;
    if (stops) {
      if (high & ((stops & (0 - stops)) - 1)) ascii = false;
      return p + __builtin_ctzll(stops);
    }
    if (high) ascii = false;
    p = block.limit;
  }
}

// The field being parsed by parse_csv_record: where its bytes start, its kind so far, the
// length of its value and whether its bytes are ASCII.
struct FieldScan {
  const char* start;
  CsvFieldKind kind = CsvFieldKind::kPlain;
  size_t length = 0;
  bool ascii = true;
};

// Scans the quoted part of a field from its opening quote at p; returns the position after
// the closing quote, or nullptr when the input ends inside the quotes.
const char* scan_quoted(const char* p, const char* end, FieldScan& f, uint64_t& line) {
  f.kind = CsvFieldKind::kQuoted;
  ++p;
  while (true) {
    const char* q = quoted_run_end(p, end, line, f.ascii);
    f.length += size_t(q - p);
    if (q == end) return nullptr;
    p = q + 1;
    if (p < end && *p == '"') {  // a doubled quote is a literal one
      ++f.length;
      ++p;
      f.kind = CsvFieldKind::kEscaped;
      continue;
    }
    return p;
  }
}

}  // namespace

const char* parse_csv_record(const char* p, const char* end, const CsvLimits& limits, CsvRow& row,
                             uint64_t& line) {
  while (p < end && (*p == '\n' || *p == '\r')) {  // blank lines
    if (*p == '\r' && p + 1 < end && p[1] == '\n') ++p;
    ++p;
    ++line;
  }
  if (p == end) return nullptr;
  row.fields.clear();
  row.field_count = 0;
  row.line = line;
  row.field_too_long = false;
  row.unterminated_quote = false;
  row.text_after_quote = false;
  auto add = [&](const FieldScan& s, const char* e, CsvFieldKind kind) {
    ++row.field_count;
    if (row.fields.size() < limits.max_fields) {
      // Member by member into the vector: a CsvField built on the stack and copied was
      // read back before its narrow `kind` store reached memory, a stall on every field.
      CsvField& f = row.fields.emplace_back();
      f.begin = s.start;
      f.end = e;
      f.kind = kind;
      f.ascii = s.ascii;
    }
    if (s.length > limits.max_field_bytes) row.field_too_long = true;
  };
  StopBlock block;
  while (true) {  // one field per iteration
    FieldScan f{p};
    const uint64_t quote_line = line;
    if (p < end && *p == '"' && !(p = scan_quoted(p, end, f, line))) {
      row.unterminated_quote = true;  // end of input inside the quotes ends the record
      add(f, end, CsvFieldKind::kEscaped);
      const bool final_newline = end[-1] == '\n' || end[-1] == '\r';  // ends the last line only
      row.lines = line - row.line + (final_newline ? 0 : 1);
      return end;
    }
    const char* tail = p;  // unquoted text, or text after the closing quote
    p = unquoted_end(p, end, block, f.ascii);
    if (p != tail) {
      f.length += size_t(p - tail);
      if (f.kind != CsvFieldKind::kPlain) {
        f.kind = CsvFieldKind::kEscaped;
        if (line != quote_line) row.text_after_quote = true;
      }
    }
    add(f, p, f.kind);
    row.lines = line - row.line + 1;
    if (p == end) return end;
    const char c = *p++;
    if (c == ',') continue;
    if (c == '\r' && p < end && *p == '\n') ++p;  // \n, \r\n or \r ends the record
    ++line;
    return p;
  }
}

size_t csv_chunk_count(size_t bytes, const CsvParallel& parallel) {
  const size_t chunk = std::max<size_t>(1, parallel.chunk_bytes);
  return std::max<size_t>(1, (bytes + chunk - 1) / chunk);
}

namespace csv_detail {

size_t count_quotes(const char* p, const char* e) {
  size_t n = 0;
#if defined(__SSE2__)
  // Byte lanes count the quotes of up to 255 blocks, then are summed: no branch per quote.
  const __m128i quote = _mm_set1_epi8('"'), zero = _mm_setzero_si128();
  while (e - p >= 16) {
    __m128i lanes = zero;
    for (int k = 0; k < 255 && e - p >= 16; ++k, p += 16)
      lanes = _mm_sub_epi8(lanes, _mm_cmpeq_epi8(load16(p), quote));
    const __m128i sums = _mm_sad_epu8(lanes, zero);
    n += size_t(_mm_cvtsi128_si32(sums)) + size_t(_mm_extract_epi16(sums, 4));
  }
#endif
  for (; p < e; ++p) n += *p == '"';
  return n;
}

const char* guess_record_start(const char* from, const char* stop, const char* end,
                               bool in_quotes) {
  const char* p = from;
  if (!in_quotes && (p[-1] == '\n' || (p[-1] == '\r' && (p == end || *p != '\n')))) return p;
  for (; p < stop; ++p) {
    const char c = *p;
    if (c == '"') {
      in_quotes = !in_quotes;
    } else if (!in_quotes && (c == '\n' || c == '\r')) {
      if (c == '\r' && p + 1 < end && p[1] == '\n') ++p;
      return p + 1;
    }
  }
  return stop;
}

}  // namespace csv_detail
}  // namespace sx::data
