#include "data/csv_reader.h"

#include <sys/stat.h>
#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace sx::data {
namespace {
constexpr size_t kChunk = 1u << 20;
}

CsvReader::CsvReader(const std::string& path, CsvLimits limits) : limits_(limits) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
    throw UserError(path + ": is a directory, expected a CSV file");
  file_ = std::fopen(path.c_str(), "rb");
  if (!file_) throw UserError(path + ": cannot open: " + std::strerror(errno));
  total_ = static_cast<uint64_t>(st.st_size);
  storage_.resize(kChunk);
  pos_ = end_ = storage_.data();
}

CsvReader::CsvReader(InMemory, std::string_view buffer, CsvLimits limits)
    : limits_(limits),
      pos_(buffer.data()),
      end_(buffer.data() + buffer.size()),
      total_(buffer.size()) {}

CsvReader::~CsvReader() {
  if (file_) std::fclose(file_);
}

bool CsvReader::fill() {
  if (!file_) return false;
  size_t n = std::fread(storage_.data(), 1, storage_.size(), file_);
  pos_ = storage_.data();
  end_ = pos_ + n;
  return n > 0;
}

int CsvReader::peek() {
  if (pos_ == end_ && !fill()) return -1;
  return static_cast<unsigned char>(*pos_);
}

void CsvReader::append(std::string& field, const char* begin, const char* end, CsvRecord& record) {
  size_t n = static_cast<size_t>(end - begin);
  size_t room = limits_.max_field_bytes > field.size() ? limits_.max_field_bytes - field.size() : 0;
  if (n > room) {
    record.field_too_long = true;
    n = room;
  }
  field.append(begin, n);
}

void CsvReader::skip(size_t bytes) {
  pos_ += bytes;
  consumed_ += bytes;
}

void CsvReader::push_capped(std::string& field, char c, CsvRecord& record) {
  if (field.size() < limits_.max_field_bytes)
    field.push_back(c);
  else
    record.field_too_long = true;
}

bool CsvReader::skip_to_record() {
  if (at_start_) {  // a UTF-8 byte-order mark is not part of the first header name
    at_start_ = false;
    if (peek() == 0xEF && end_ - pos_ >= 3 && std::memcmp(pos_, "\xEF\xBB\xBF", 3) == 0) skip(3);
  }
  while (true) {  // blank lines
    const int c = peek();
    if (c == -1) return false;
    if (c != '\n' && c != '\r') return true;
    skip(1);
    if (c == '\r' && peek() == '\n') skip(1);
    ++line_;
  }
}

bool CsvReader::read_quoted(std::string& field, CsvRecord& record) {
  skip(1);  // the opening quote
  while (true) {
    if (pos_ == end_ && !fill()) return false;
    const char* start = pos_;
    while (pos_ < end_ && *pos_ != '"' && *pos_ != '\n') ++pos_;
    append(field, start, pos_, record);
    consumed_ += static_cast<uint64_t>(pos_ - start);
    if (pos_ == end_) continue;
    if (*pos_ == '\n') {
      ++line_;
      push_capped(field, '\n', record);
      skip(1);
      continue;
    }
    skip(1);  // a quote: doubled means a literal quote, else the quoted part ends
    if (peek() != '"') return true;
    push_capped(field, '"', record);
    skip(1);
  }
}

bool CsvReader::read_unquoted(std::string& field, CsvRecord& record) {
  while (true) {
    if (pos_ == end_ && !fill()) return false;  // end of input ends the record
    const char* start = pos_;
    while (pos_ < end_ && *pos_ != ',' && *pos_ != '\n' && *pos_ != '\r') ++pos_;
    append(field, start, pos_, record);
    consumed_ += static_cast<uint64_t>(pos_ - start);
    if (pos_ == end_) continue;
    const char c = *pos_;
    skip(1);
    if (c == ',') return true;  // next field
    // End of record: \n, \r\n or \r.
    if (c == '\r' && peek() == '\n') skip(1);
    ++line_;
    return false;
  }
}

bool CsvReader::next(CsvRecord& record) {
  record.fields.clear();
  record.field_count = 0;
  record.field_too_long = false;
  record.unterminated_quote = false;
  record.text_after_quote = false;
  if (!skip_to_record()) return false;
  record.line = line_;

  std::string scratch;  // fields past max_fields are scanned into this and dropped
  while (true) {        // one field per iteration
    std::string* field = &scratch;
    ++record.field_count;
    if (record.fields.size() < limits_.max_fields) {
      record.fields.emplace_back();
      field = &record.fields.back();
    }
    scratch.clear();
    const uint64_t quote_line = line_;
    const bool quoted = peek() == '"';
    if (quoted && !read_quoted(*field, record)) {
      record.unterminated_quote = true;
      return true;
    }
    if (quoted && line_ != quote_line) {
      const int c = peek();
      if (c != -1 && c != ',' && c != '\n' && c != '\r') record.text_after_quote = true;
    }
    // Unquoted text, or text after a closing quote (kept as Python's csv module keeps it).
    if (!read_unquoted(*field, record)) return true;
  }
}

}  // namespace sx::data
