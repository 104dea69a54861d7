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

MappedFile::MappedFile(const std::string& path) {
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
    ::madvise(p, size_, MADV_WILLNEED);  // read ahead; the parsing threads fault pages in
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

size_t count_newlines(const char* p, const char* e) {
  size_t n = 0;
  while ((p = static_cast<const char*>(std::memchr(p, '\n', size_t(e - p))))) {
    ++n;
    if (++p == e) break;
  }
  return n;
}

// The end of an unquoted run: the first ',', '\n' or '\r'. Most fields are a few bytes, so
// one 16-byte compare usually finds it.
const char* unquoted_end(const char* p, const char* e) {
#if defined(__SSE2__)
  const __m128i comma = _mm_set1_epi8(','), lf = _mm_set1_epi8('\n'), cr = _mm_set1_epi8('\r');
  for (; e - p >= 16; p += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, comma), _mm_cmpeq_epi8(v, lf)),
                                     _mm_cmpeq_epi8(v, cr));
    if (const int mask = _mm_movemask_epi8(hit)) return p + __builtin_ctz(unsigned(mask));
  }
#endif
  while (p < e && *p != ',' && *p != '\n' && *p != '\r') ++p;
  return p;
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
  auto add = [&](const char* b, const char* e, CsvFieldKind kind, size_t length) {
    ++row.field_count;
    if (row.fields.size() < limits.max_fields) {
      // Member by member into the vector: a CsvField built on the stack and copied was
      // read back before its narrow `kind` store reached memory, a stall on every field.
      CsvField& f = row.fields.emplace_back();
      f.begin = b;
      f.end = e;
      f.kind = kind;
    }
    if (length > limits.max_field_bytes) row.field_too_long = true;
  };
  while (true) {  // one field per iteration
    const char* start = p;
    size_t length = 0;  // of the value
    CsvFieldKind kind = CsvFieldKind::kPlain;
    if (p < end && *p == '"') {
      kind = CsvFieldKind::kQuoted;
      ++p;
      while (true) {
        const char* q = static_cast<const char*>(std::memchr(p, '"', size_t(end - p)));
        const char* stop = q ? q : end;
        line += count_newlines(p, stop);
        length += size_t(stop - p);
        if (!q) {  // end of input inside the quotes ends the record
          row.unterminated_quote = true;
          add(start, end, CsvFieldKind::kEscaped, length);
          return end;
        }
        p = q + 1;
        if (p < end && *p == '"') {  // a doubled quote is a literal one
          ++length;
          ++p;
          kind = CsvFieldKind::kEscaped;
          continue;
        }
        break;
      }
    }
    const char* tail = p;  // unquoted text, or text after the closing quote
    p = unquoted_end(p, end);
    if (p != tail) {
      length += size_t(p - tail);
      if (kind == CsvFieldKind::kQuoted) kind = CsvFieldKind::kEscaped;
    }
    add(start, p, kind, length);
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
  while (p < e && (p = static_cast<const char*>(std::memchr(p, '"', size_t(e - p))))) {
    ++n;
    ++p;
  }
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
