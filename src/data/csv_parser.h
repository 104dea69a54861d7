// CSV at memory speed: the file is mapped read-only and its records are parsed in parallel
// over chunks, fields as views of the mapping. Same dialect and results as CsvReader (the
// simple sequential reference, see csv_reader.h), which the fuzzer checks on every input.
//
// How the chunks agree (as simdcsv-style parsers do): a chunk's quote state at its start is
// guessed from the parity of the quotes before it (one parallel counting pass); each chunk
// parses records from the first record start that guess gives until it passes its end. The
// stitch then walks the chunks in order: a chunk's records are taken from the record where
// the previous chunk stopped; where no record of the chunk starts there (a wrong guess:
// malformed quoting, a quote inside an unquoted field), records are parsed sequentially
// until they meet one of the chunk's own record starts again. So the result never depends on
// the guess, only the speed does.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/parallel.h"
#include "data/csv_reader.h"

namespace sx::data {

// A file mapped read-only (private, shared with the page cache). Throws UserError naming the
// path when it cannot be opened; an empty file maps to an empty view. While it is mapped, a
// read past the end of the file shrunk under it (truncated or rewritten in place during a run)
// ends the process with one line naming the file (core/mapping_guard.h), not a SIGBUS crash.
class MappedFile {
 public:
  // `read_ahead`: ask the kernel to read the whole file ahead (a full parse), not for a header.
  explicit MappedFile(const std::string& path, bool read_ahead = true);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  std::string_view bytes() const { return {data_, size_}; }

 private:
  const char* data_ = nullptr;
  size_t size_ = 0;
  int guard_ = -1;
};

enum class CsvFieldKind : uint8_t {
  kPlain,    // unquoted: the value is the raw bytes
  kQuoted,   // "..." with no doubled quote and nothing after it: the bytes inside the quotes
  kEscaped,  // anything else: decode_csv_field
};

struct CsvField {
  const char* begin;  // the raw bytes of the field, quotes included, delimiters excluded
  const char* end;
  CsvFieldKind kind;
  bool ascii;  // every byte of [begin, end) is ASCII, so the value is valid UTF-8
  // The value, for kPlain and kQuoted fields.
  std::string_view view() const {
    return kind == CsvFieldKind::kQuoted ? std::string_view(begin + 1, size_t(end - begin - 2))
                                         : std::string_view(begin, size_t(end - begin));
  }
};

// The value of any field, cut to max_bytes (as CsvReader cuts it).
void decode_csv_field(const CsvField& field, std::string& out, size_t max_bytes);
// The value as a view when the field has one, else decoded into scratch.
std::string_view csv_field_value(const CsvField& field, std::string& scratch, size_t max_bytes);

struct CsvRow {
  std::vector<CsvField> fields;  // the first max_fields; reused from row to row
  size_t field_count = 0;
  uint64_t line = 0;
  uint64_t lines = 1;  // the physical lines the record runs over (quoted newlines, a stray quote)
  bool field_too_long = false;
  bool unterminated_quote = false;
  // A quoted part ran over lines and text followed its closing quote (`"a\nb" c`): the sign of
  // a stray quote that joined records (Python's csv module keeps the text; the row is suspect).
  bool text_after_quote = false;
};

// Parses the record at p (after skipping blank lines) into row; returns the position after
// its end, or nullptr when only blank lines remain. `line` is the physical line at p and is
// advanced past the record.
const char* parse_csv_record(const char* p, const char* end, const CsvLimits& limits, CsvRow& row,
                             uint64_t& line);

struct CsvParallel {
  size_t threads = 0;             // 0 = all cores
  size_t chunk_bytes = 4u << 20;  // work unit; several per thread balance the load
};

size_t csv_chunk_count(size_t bytes, const CsvParallel& parallel);

namespace csv_detail {
size_t count_quotes(const char* begin, const char* end);
// The first record start in [from, stop) if the quote state at `from` is `in_quotes`; `stop`
// when there is none (the scan ends there, so a field spanning many chunks costs each only
// its own bytes).
const char* guess_record_start(const char* from, const char* stop, const char* end, bool in_quotes);

// The records a chunk parsed from its guessed first record start.
template <class Result>
struct Chunk {
  std::vector<const char*> starts;  // where each record's parse began
  std::vector<uint64_t> start_lines;
  std::vector<Result> rows;
  const char* stop = nullptr;  // the record start after the last record
  uint64_t stop_line = 0;
};

// Parses the records from `pos` (a record start, line 0) until one starts at or after `to`.
template <class Result, class Convert>
void parse_chunk(const char* pos, const char* to, const char* end, const CsvLimits& limits,
                 size_t slot, CsvRow& row, Chunk<Result>& c, Convert& convert) {
  uint64_t line = 0;  // relative; the stitch makes it absolute
  while (pos < to) {
    const char* start = pos;
    const uint64_t start_line = line;
    pos = parse_csv_record(pos, end, limits, row, line);
    if (!pos) {
      pos = end;
      break;
    }
    c.starts.push_back(start);
    c.start_lines.push_back(start_line);
    c.rows.push_back(convert(static_cast<const CsvRow&>(row), slot));
  }
  c.stop = pos;
  c.stop_line = line;
}

// Hands the chunks' records to emit(Result&&) in file order from `begin` (line `line`): a
// chunk's records are taken from the one starting where the previous chunk stopped; where
// none of them starts there, records are parsed sequentially (slot n) until they meet one
// of the chunk's own starts.
template <class Result, class Convert, class Bound, class Emit>
void stitch(std::vector<Chunk<Result>>& chunks, const char* begin, const char* end, uint64_t line,
            const CsvLimits& limits, Bound&& bound, Convert& convert, Emit& emit) {
  const size_t n = chunks.size();
  const char* pos = begin;
  CsvRow row;
  for (size_t k = 0; k < n; ++k) {
    Chunk<Result>& c = chunks[k];
    size_t j = 0;
    while (pos < bound(k + 1) && pos < end) {
      while (j < c.starts.size() && c.starts[j] < pos) ++j;
      if (j < c.starts.size() && c.starts[j] == pos) {   // in step with the chunk's parse
        const uint64_t shift = line - c.start_lines[j];  // modular: exact once added
        for (; j < c.rows.size(); ++j) {
          c.rows[j].line += shift;
          emit(std::move(c.rows[j]));
        }
        pos = c.stop;
        line = c.stop_line + shift;
        break;
      }
      pos = parse_csv_record(pos, end, limits, row, line);  // out of step: sequential
      if (!pos) {
        pos = end;
        break;
      }
      emit(convert(static_cast<const CsvRow&>(row), n));
    }
    c = Chunk<Result>();  // free as we go
  }
}
}  // namespace csv_detail

// Parses every record of `body` (the bytes after the header; its first line is
// `first_line`) into results of `convert(const CsvRow&, size_t slot) -> Result`, and hands
// them to `emit(Result&&)` in file order, on the calling thread. Result must have a
// `uint64_t line` member holding row.line; it is corrected to the absolute line here. `slot`
// < csv_chunk_count(body.size()) + 1 identifies the caller of convert: one thread at a time
// per slot, so per-slot scratch needs no lock. Chunks go to whichever thread is free, so a
// thread slowed by another process on its core takes fewer. Before the first result,
// `expect(size_t n)` is told how many are coming (exact unless a chunk's guess was wrong).
template <class Result, class Convert, class Expect, class Emit>
void for_each_csv_row(std::string_view body, uint64_t first_line, const CsvLimits& limits,
                      const CsvParallel& parallel, Convert&& convert, Expect&& expect,
                      Emit&& emit) {
  const char* const begin = body.data();
  const char* const end = begin + body.size();
  const size_t n = csv_chunk_count(body.size(), parallel);
  auto bound = [&](size_t k) { return k >= n ? end : begin + body.size() / n * k; };

  std::vector<size_t> quotes(n);
  parallel_claim(n, parallel.threads, [&](IndexClaims& claims) {
    for (size_t k; claims.next(k);) quotes[k] = csv_detail::count_quotes(bound(k), bound(k + 1));
  });
  std::vector<bool> odd(n, false);  // the quote state at each chunk's start
  for (size_t k = 1; k < n; ++k) odd[k] = odd[k - 1] != (quotes[k - 1] % 2 == 1);

  std::vector<csv_detail::Chunk<Result>> chunks(n);
  parallel_claim(n, parallel.threads, [&](IndexClaims& claims) {
    CsvRow row;
    size_t expected = 0;  // records per chunk, as in the last chunk: grown once, not doubled
    for (size_t k; claims.next(k);) {
      csv_detail::Chunk<Result>& c = chunks[k];
      c.starts.reserve(expected);
      c.start_lines.reserve(expected);
      c.rows.reserve(expected);
      const char* pos =
          k == 0 ? begin : csv_detail::guess_record_start(bound(k), bound(k + 1), end, odd[k]);
      csv_detail::parse_chunk(pos, bound(k + 1), end, limits, k, row, c, convert);
      expected = c.rows.size() + c.rows.size() / 8;
    }
  });
  size_t total = 0;
  for (const auto& c : chunks) total += c.rows.size();
  expect(total);
  csv_detail::stitch(chunks, begin, end, first_line, limits, bound, convert, emit);
}

// The same results in a vector.
template <class Result, class Convert>
std::vector<Result> parse_csv_rows(std::string_view body, uint64_t first_line,
                                   const CsvLimits& limits, const CsvParallel& parallel,
                                   Convert&& convert) {
  std::vector<Result> out;
  for_each_csv_row<Result>(
      body, first_line, limits, parallel, convert, [&](size_t n) { out.reserve(n); },
      [&](Result&& r) { out.push_back(std::move(r)); });
  return out;
}

}  // namespace sx::data
