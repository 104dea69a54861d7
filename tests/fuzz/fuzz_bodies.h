// What the fuzzers run on one input; the regression corpus (tests/fuzz/corpus) runs the
// same bodies as ordinary tests, so every input that once crashed stays covered.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "data/csv_parser.h"
#include "data/csv_reader.h"
#include "data/text.h"

namespace sx::fuzz {

// A record as both parsers see it: every stored field decoded.
struct ParsedRecord {
  uint64_t line = 0;
  size_t field_count = 0;
  bool field_too_long = false;
  bool unterminated_quote = false;
  bool text_after_quote = false;
  std::vector<std::string> fields;
  bool ascii_flags_hold = true;  // each stored field's `ascii` says whether its bytes are ASCII
  bool operator==(const ParsedRecord& o) const {
    return line == o.line && field_count == o.field_count && field_too_long == o.field_too_long &&
           unterminated_quote == o.unterminated_quote && text_after_quote == o.text_after_quote &&
           fields == o.fields && ascii_flags_hold == o.ascii_flags_hold;
  }
};

inline bool all_ascii(const char* begin, const char* end) {
  for (const char* p = begin; p < end; ++p)
    if (static_cast<unsigned char>(*p) >= 0x80) return false;
  return true;
}

// The simple sequential reference: CsvReader.
inline std::vector<ParsedRecord> parse_sequential(std::string_view input, data::CsvLimits limits,
                                                  size_t max_records = SIZE_MAX) {
  data::CsvReader reader(data::CsvReader::InMemory{}, input, limits);
  data::CsvRecord record;
  std::vector<ParsedRecord> out;
  while (out.size() < max_records && reader.next(record))
    out.push_back({record.line, record.field_count, record.field_too_long,
                   record.unterminated_quote, record.text_after_quote, record.fields});
  return out;
}

// The parallel parser over chunks of `chunk_bytes` (small ones put chunk boundaries
// everywhere: inside quotes, between \r and \n, inside blank lines).
inline std::vector<ParsedRecord> parse_parallel(std::string_view input, data::CsvLimits limits,
                                                size_t chunk_bytes, size_t threads) {
  if (input.substr(0, 3) == "\xEF\xBB\xBF") input.remove_prefix(3);
  return data::parse_csv_rows<ParsedRecord>(
      input, 1, limits, {threads, chunk_bytes}, [&](const data::CsvRow& row, size_t) {
        ParsedRecord r{row.line,
                       row.field_count,
                       row.field_too_long,
                       row.unterminated_quote,
                       row.text_after_quote,
                       {}};
        for (const data::CsvField& f : row.fields) {
          r.fields.emplace_back();
          data::decode_csv_field(f, r.fields.back(), limits.max_field_bytes);
          if (f.ascii != all_ascii(f.begin, f.end)) r.ascii_flags_hold = false;
        }
        return r;
      });
}

inline void csv_one_input(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  const data::CsvLimits limits{4096, 64};
  std::vector<ParsedRecord> reference = parse_sequential(input, limits);
  // The parallel parser must agree exactly, whatever the chunking: tiny chunks put the
  // boundaries everywhere (on one thread: the stitch is the same, and the fuzzer runs many
  // times faster without a thread start per input); larger ones run on threads.
  const size_t chunk = size ? 1 + data[size - 1] % 61 : 1;
  if (parse_parallel(input, limits, chunk, 1) != reference) __builtin_trap();
  if (parse_parallel(input, limits, 1024, 3) != reference) __builtin_trap();
  for (auto& record : reference) {
    for (auto& field : record.fields) {
      if (field.size() > 4096) __builtin_trap();  // the bound must hold
      data::sanitize_utf8(field);
      std::string_view stripped = data::strip_python(field);
      if (stripped.data() < field.data() ||
          stripped.data() + stripped.size() > field.data() + field.size())
        __builtin_trap();
      for (auto word : data::wordpunct_tokenize(field))
        if (word.empty() || word.data() < field.data() ||
            word.data() + word.size() > field.data() + field.size())
          __builtin_trap();
    }
  }
}

}  // namespace sx::fuzz
