// A streaming RFC 4180 CSV reader: quoted fields may hold commas, newlines and doubled
// quotes; \n, \r\n and \r end records. Memory stays bounded whatever the input: a field
// longer than `max_field_bytes` is cut and flagged (the scan goes on in linear time), and
// fields past `max_fields` are counted, not stored. Malformed input never throws here;
// the record carries flags and the caller decides (see jigsaw.h).
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace sx::data {

struct CsvLimits {
  size_t max_field_bytes = 8u << 20;
  size_t max_fields = 1024;
};

struct CsvRecord {
  std::vector<std::string> fields;  // at most max_fields
  size_t field_count = 0;           // fields seen, stored or not
  uint64_t line = 0;                // 1-based physical line where the record starts
  bool field_too_long = false;      // some field exceeded max_field_bytes and was cut
  bool unterminated_quote = false;  // end of input inside a quoted field
  bool text_after_quote = false;    // as CsvRow's (csv_parser.h)
};

class CsvReader {
 public:
  // Reads a file; throws UserError when it cannot be opened. `what` names it in messages.
  CsvReader(const std::string& path, CsvLimits limits = {});
  // Reads from memory (tests, fuzzing). The buffer must outlive the reader.
  struct InMemory {};
  CsvReader(InMemory, std::string_view buffer, CsvLimits limits = {});
  ~CsvReader();
  CsvReader(const CsvReader&) = delete;
  CsvReader& operator=(const CsvReader&) = delete;

  // Next non-empty record; false at end of input.
  bool next(CsvRecord& record);
  uint64_t bytes_read() const { return consumed_; }
  uint64_t total_bytes() const { return total_; }

 private:
  bool fill();  // refill buffer_ from file_; false at end of input
  int peek();   // next byte or -1
  void append(std::string& field, const char* begin, const char* end, CsvRecord& record);
  void push_capped(std::string& field, char c, CsvRecord& record);  // one byte, within the limit
  void skip(size_t bytes);                                          // past bytes in the buffer
  bool skip_to_record();  // past a byte-order mark and blank lines; false at end of input
  // The rest of a quoted part, from its opening quote; false at end of input inside it.
  bool read_quoted(std::string& field, CsvRecord& record);
  // Up to the field's end: true after a comma, false at the record's or the input's end.
  bool read_unquoted(std::string& field, CsvRecord& record);

  std::FILE* file_ = nullptr;
  CsvLimits limits_;
  std::vector<char> storage_;
  const char* pos_ = nullptr;
  const char* end_ = nullptr;
  uint64_t line_ = 1;
  uint64_t consumed_ = 0;
  uint64_t total_ = 0;
  bool at_start_ = true;
};

}  // namespace sx::data
