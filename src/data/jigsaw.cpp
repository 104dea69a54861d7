#include "data/jigsaw.h"

#include <spdlog/spdlog.h>

#include <cctype>
#include <charconv>
#include <cmath>
#include <memory>
#include <optional>
#include <unordered_map>

#include "core/error.h"
#include "core/progress.h"
#include "core/strings.h"
#include "data/csv_parser.h"
#include "data/text.h"

namespace sx::data {
namespace {

constexpr size_t kProblemsListed = 5;

// Why a row is bad, in the order the checks run (the first that applies is reported).
enum class Problem : uint8_t {
  kNone,
  kUnterminated,
  kTextAfterQuote,
  kTooLong,
  kFieldCount,
  kLabel,
  kId,
  kIdNotUtf8,  // a text table's id (written as a UTF-8 string)
  kEmptyLang,
  kBadLang,
  kEmptyText
};

// What a parsing thread makes of one record; the sequential pass does the bookkeeping.
struct RowResult {
  uint64_t line = 0;
  uint64_t lines = 1;     // physical lines of the record
  std::string_view text;  // cleaned and stripped; for kLabel/kId the offending value
  std::string_view lang;  // stripped
  std::string_view key;   // the id of a text table (stripped); a test id with leading zeros
  int64_t id = 0;
  uint32_t field_count = 0;
  uint32_t invalid_utf8 = 0;  // bytes dropped from the text
  Problem problem = Problem::kNone;
  uint8_t label = 0;      // 1 = toxic
  uint8_t bad_label = 0;  // which label column failed (kLabel)
};

// Per-slot scratch, and storage for the values that could not stay views of the mapping.
struct Slot {
  std::shared_ptr<TextArena> arena = std::make_shared<TextArena>();
  std::string text, value;
};

bool parse_label(std::string_view text, double& value) {
  std::string_view t = trim_view(text);
  if (t.size() > 1 && t[0] == '+' && t[1] != '-') t.remove_prefix(1);  // float() accepts a sign
  return !t.empty() && parse_double(t, value) && std::isfinite(value) && value >= 0.0 &&
         value <= 1.0;
}

bool parse_id(std::string_view text, int64_t& value) {
  std::string_view t = trim_view(text);
  if (t.empty()) return false;
  for (char c : t)
    if (c < '0' || c > '9') return false;
  // Any id up to 2^63 - 1 (19 digits; 18 were the limit before), none past it.
  const auto [end, error] = std::from_chars(t.data(), t.data() + t.size(), value);
  return error == std::errc() && end == t.data() + t.size();
}

// "line 7", or "lines 7-101 (one record: a stray quote?)" for a record over several lines.
std::string line_span(uint64_t line, uint64_t lines) {
  return lines > 1 ? "lines " + std::to_string(line) + "-" + std::to_string(line + lines - 1) +
                         " (one record: a stray quote?)"
                   : "line " + std::to_string(line);
}

// A Jigsaw file: mapped, its header read, its rows parsed in parallel; bad rows reported
// (file, line, reason) under the fail/skip policy, nothing dropped silently.
class JigsawFile {
 public:
  // `header_only`: the header is all that will be read (no read-ahead of a multi-GB file).
  JigsawFile(const std::string& path, const LoadOptions& options, LoadReport& report,
             bool header_only = false)
      : path_(path),
        options_(options),
        report_(report),
        mapping_(std::make_shared<MappedFile>(path, !header_only)),
        progress_("loading " + path, mapping_->bytes().size(), options.progress_interval,
                  options.progress) {
    report_.path = path;
    std::string_view bytes = mapping_->bytes();
    if (bytes.substr(0, 3) == "\xEF\xBB\xBF") bytes.remove_prefix(3);  // a UTF-8 BOM
    if (bytes.substr(0, 2) == "\xFF\xFE" || bytes.substr(0, 2) == "\xFE\xFF")
      throw UserError(where() +
                      ":1: the file is UTF-16 (it starts with a UTF-16 byte order "
                      "mark), expected UTF-8: convert it (iconv -f UTF-16 -t UTF-8)");
    CsvRow header;
    const char* body =
        parse_csv_record(bytes.data(), bytes.data() + bytes.size(), options.limits, header, line_);
    if (!body) throw UserError(where() + ": the file is empty, expected a header line and rows");
    if (header.unterminated_quote || header.field_too_long || header.text_after_quote)
      throw UserError(where() + ":1: the header line is malformed");
    if (header.field_count > options.limits.max_fields)  // else every row has "too many fields"
      throw UserError(where() + ":1: the header has " + std::to_string(header.field_count) +
                      " columns; at most " + std::to_string(options.limits.max_fields) +
                      " are read: keep the columns the configuration names");
    std::string scratch;
    for (const CsvField& f : header.fields)
      header_.emplace_back(csv_field_value(f, scratch, options.limits.max_field_bytes));
    header_count_ = header_.size();
    body_ = bytes.substr(size_t(body - bytes.data()));
    slots_.resize(csv_chunk_count(body_.size(), parallel()) + 1);
  }

  std::string where() const { return (options_.key.empty() ? "" : options_.key + ": ") + path_; }
  CsvParallel parallel() const { return options_.parallel; }

  // Index of a column; throws when it is missing unless optional.
  std::optional<size_t> column(const std::string& name, const std::string& key, bool optional) {
    for (size_t i = 0; i < header_.size(); ++i)
      if (trim(header_[i]) == name) return i;
    if (optional) return std::nullopt;
    throw UserError(where() + ":1: missing column '" + name + "' (" + key +
                    "); the header has: " + join(header_, ", "));
  }

  // Parses every row with `convert(row, slot, result)` on all threads, after the checks of
  // the record's structure, and hands the results to `take(const RowResult&)` in row order
  // after `expect(size_t rows)`.
  template <class Convert, class Expect, class Take>
  void parse(Convert&& convert, Expect&& expect, Take&& take) {
    for_each_csv_row<RowResult>(
        body_, line_, options_.limits, parallel(),
        [&](const CsvRow& row, size_t slot) {
          RowResult r;
          r.line = row.line;
          r.lines = row.lines;
          r.field_count = static_cast<uint32_t>(row.field_count);
          if (row.unterminated_quote)
            r.problem = Problem::kUnterminated;
          else if (row.text_after_quote)
            r.problem = Problem::kTextAfterQuote;
          else if (row.field_too_long)
            r.problem = Problem::kTooLong;
          else if (row.field_count != header_count_ || row.fields.size() != header_count_)
            r.problem = Problem::kFieldCount;
          else
            convert(row, slots_[slot], r);
          return r;
        },
        expect, [&](RowResult&& r) { take(static_cast<const RowResult&>(r)); });
  }

  // A field's value, stripped; a view of the mapping unless it had to be decoded.
  std::string_view stripped(const CsvField& field, Slot& slot) const {
    std::string_view v =
        strip_python(csv_field_value(field, slot.value, options_.limits.max_field_bytes));
    return field.kind == CsvFieldKind::kEscaped ? slot.arena->copy(v) : v;
  }
  std::string_view copied(const CsvField& field, Slot& slot) const {
    return slot.arena->copy(csv_field_value(field, slot.value, options_.limits.max_field_bytes));
  }

  // The text as the notebook reads it: undecodable bytes dropped (errors='ignore'), then
  // str.strip(). A view of the mapping unless unescaping or cleaning needed a copy.
  std::string_view text(const CsvField& field, Slot& slot, RowResult& r) const {
    std::string_view v = csv_field_value(field, slot.text, options_.limits.max_field_bytes);
    bool copy = field.kind == CsvFieldKind::kEscaped;
    if (!field.ascii && !is_valid_utf8(v)) {  // ASCII bytes are valid UTF-8
      if (!copy) slot.text.assign(v);
      r.invalid_utf8 = static_cast<uint32_t>(sanitize_utf8(slot.text));
      v = slot.text;
      copy = true;
    }
    v = strip_python(v);
    return copy ? slot.arena->copy(v) : v;
  }
  // The row's language (stripped; "en" without a language column) and text, or the problem.
  void lang_and_text(const CsvRow& row, std::optional<size_t> lang_col, size_t text_col, Slot& slot,
                     RowResult& r) const {
    r.lang = lang_col ? stripped(row.fields[*lang_col], slot) : std::string_view("en");
    if (r.lang.empty() || !is_plain_name(r.lang)) {
      r.problem = r.lang.empty() ? Problem::kEmptyLang : Problem::kBadLang;
      return;
    }
    r.text = text(row.fields[text_col], slot, r);
    if (r.text.empty()) r.problem = Problem::kEmptyText;
  }

  // The structural problems and those found by convert, in row order.
  bool report_problem(const RowResult& r, const std::string& detail_of_label = "") {
    switch (r.problem) {
      case Problem::kNone:
        return false;
      case Problem::kUnterminated:
        bad(r.line, "quoted field not closed before the end of the file", "", r.lines);
        return true;
      case Problem::kTextAfterQuote:  // else silently one row of several (csv_parser.h)
        bad(r.line, "text after the closing quote of a field that runs over lines", "", r.lines);
        return true;
      case Problem::kTooLong:
        bad(r.line,
            "field longer than " + std::to_string(options_.limits.max_field_bytes) + " bytes");
        return true;
      case Problem::kFieldCount:
        bad(r.line, "wrong number of fields",
            "(expected " + std::to_string(header_count_) + ", found " +
                std::to_string(r.field_count) + ")",
            r.lines);
        return true;
      case Problem::kLabel:
        bad(r.line, "label is not a number in [0, 1]",
            "(" + detail_of_label + " = " + quote_value(r.text) + ")");
        return true;
      case Problem::kId:
        bad(r.line, "id is not a non-negative integer", "(" + quote_value(r.text) + ")");
        return true;
      case Problem::kIdNotUtf8:
        bad(r.line, "id is not valid UTF-8");
        return true;
      case Problem::kEmptyLang:
        bad(r.line, "empty language");
        return true;
      case Problem::kBadLang:
        bad(r.line, "language is not a plain name", "(" + plain_name_expected(r.lang) + ")");
        return true;
      case Problem::kEmptyText:
        bad(r.line, "empty text");
        return true;
    }
    return false;
  }

  void count_row() {
    ++report_.rows_read;
    ++data_row_;
  }
  // The invalid UTF-8 dropped from a text that passed the checks before the text's own.
  void count_text(const RowResult& r) {
    if (r.invalid_utf8) {
      report_.invalid_utf8_bytes += r.invalid_utf8;
      ++report_.texts_with_invalid_utf8;
    }
  }
  int64_t data_row() const { return data_row_; }

  // Reports a bad row under `reason` (the detail text names the specific value).
  // `lines`: the physical lines of the record. A stray quote makes one record of the lines up
  // to the next quote (or the end of the file), every one of them lost with it: said.
  void bad(uint64_t line, const std::string& reason, const std::string& detail = "",
           uint64_t lines = 1) {
    auto& stat = report_.bad_rows[reason];
    ++stat.count;
    if (stat.first_lines.size() < kProblemsListed) {
      stat.first_lines.push_back(line);
      stat.first_spans.push_back(lines);
    }
    if (problems_.size() < kProblemsListed)
      problems_.push_back(line_span(line, lines) + ": " + reason +
                          (detail.empty() ? "" : " " + detail));
    if (options_.bad_rows == BadRows::kFail && problems_.size() >= kProblemsListed) {
      stopped_early_ = true;
      finish();
    }
  }

  // The storage the kept texts point into.
  void keep_storage(TextColumn& texts) const {
    texts.keep_file(path_, mapping_->bytes(), mapping_);
    for (const Slot& s : slots_)
      if (s.arena->bytes()) texts.keep(s.arena);
  }

  void finish() {
    progress_.advance(mapping_->bytes().size());
    progress_.finish();
    if (options_.bad_rows == BadRows::kFail && !problems_.empty()) {
      uint64_t n = report_.bad_row_count();
      std::string count = stopped_early_
                              ? "first " + std::to_string(n) + " bad rows (reading stopped there)"
                              : std::to_string(n) + (n == 1 ? " bad row" : " bad rows");
      throw UserError(where() + ": " + count + ": " + join(problems_, "; ") +
                      ". Fix the file or set data.bad_rows=skip to drop such rows");
    }
  }

 private:
  std::string path_;
  const LoadOptions& options_;
  LoadReport& report_;
  std::shared_ptr<MappedFile> mapping_;
  Progress progress_;
  uint64_t line_ = 1;  // after the header: the body's first line
  std::vector<std::string> header_;
  size_t header_count_ = 0;
  std::string_view body_;
  std::vector<Slot> slots_;
  int64_t data_row_ = -1;
  bool stopped_early_ = false;
  std::vector<std::string> problems_;
};

}  // namespace

uint64_t LoadReport::bad_row_count() const {
  uint64_t n = 0;
  for (const auto& [reason, stat] : bad_rows) n += stat.count;
  return n;
}

void LoadReport::log() const {
  spdlog::info("{}: {} rows read, {} kept", path, rows_read, rows_kept);
  if (invalid_utf8_bytes)
    spdlog::warn("{}: dropped {} invalid UTF-8 bytes in {} texts (as Python's errors='ignore')",
                 path, invalid_utf8_bytes, texts_with_invalid_utf8);
  if (zero_padded_ids)
    spdlog::warn(
        "{}: {} written with leading zeros (the first on line {}: {}): ids are numbers, so "
        "test/ids and submission.csv hold {}",
        path, zero_padded_ids == 1 ? "1 id is" : std::to_string(zero_padded_ids) + " ids are",
        first_zero_padded.first, first_zero_padded.second, std::stoll(first_zero_padded.second));
  for (const auto& [reason, stat] : bad_rows) {
    std::vector<std::string> lines;
    for (size_t i = 0; i < stat.first_lines.size(); ++i) {
      const uint64_t line = stat.first_lines[i], span = stat.first_spans[i];
      lines.push_back(span > 1 ? std::to_string(line) + "-" + std::to_string(line + span - 1) +
                                     " (one record)"
                               : std::to_string(line));
    }
    spdlog::warn("{}: skipped {} rows: {} (lines {}{})", path, stat.count, reason,
                 join(lines, ", "), stat.count > stat.first_lines.size() ? ", ..." : "");
  }
}

namespace {

struct LabeledIndex {
  size_t text;
  std::vector<size_t> labels;
  std::optional<size_t> lang;
};

LabeledIndex find_columns(JigsawFile& file, const LabeledColumns& columns) {
  LabeledIndex at{*file.column(columns.text, "data.text_field", false), {}, std::nullopt};
  for (const auto& name : columns.labels)
    at.labels.push_back(*file.column(name, "label fields", false));
  at.lang = file.column(columns.lang, "data.lang_field", true);
  return at;
}

struct TestIndex {
  size_t id, text;
  std::optional<size_t> lang;
};

TestIndex find_columns(JigsawFile& file, const TestColumns& columns) {
  const size_t id = *file.column(columns.id, "data.test_id_field", false);
  const size_t text = *file.column(columns.text, "data.test_text_field", false);
  return {id, text, file.column(columns.lang, "data.test_lang_field", true)};
}

}  // namespace

void check_header(const std::string& path, const LabeledColumns& columns,
                  const LoadOptions& options) {
  LoadReport report;
  JigsawFile file(path, options, report, /*header_only=*/true);
  find_columns(file, columns);
}

void check_header(const std::string& path, const TestColumns& columns, const LoadOptions& options) {
  LoadReport report;
  JigsawFile file(path, options, report, /*header_only=*/true);
  find_columns(file, columns);
}

LabeledCorpus load_labeled_csv(const std::string& path, const LabeledColumns& columns,
                               const LoadOptions& options, LoadReport* report_out) {
  LoadReport local;
  LoadReport& report = report_out ? *report_out : local;
  JigsawFile file(path, options, report);
  const LabeledIndex at = find_columns(file, columns);
  const size_t text_col = at.text;
  const std::vector<size_t>& label_cols = at.labels;
  const std::optional<size_t> lang_col = at.lang;

  LabeledCorpus corpus;
  auto convert = [&](const CsvRow& row, Slot& slot, RowResult& r) {
    double label = 0;
    for (size_t k = 0; k < label_cols.size(); ++k) {
      const CsvField& field = row.fields[label_cols[k]];
      double v;
      if (!parse_label(csv_field_value(field, slot.value, options.limits.max_field_bytes), v)) {
        r.problem = Problem::kLabel;
        r.bad_label = static_cast<uint8_t>(k);
        r.text = file.copied(field, slot);
        return;
      }
      label = std::max(label, v);
    }
    r.label = label >= options.label_threshold ? 1 : 0;
    file.lang_and_text(row, lang_col, text_col, slot, r);
  };
  file.parse(
      convert, [&](size_t rows) { corpus.reserve(rows); },
      [&](const RowResult& r) {
        file.count_row();
        if (r.problem != Problem::kEmptyText &&
            file.report_problem(r, r.problem == Problem::kLabel ? columns.labels[r.bad_label] : ""))
          return;
        file.count_text(r);
        if (file.report_problem(r)) return;
        corpus.texts.push_back_view(r.text);
        corpus.labels.push_back(r.label);
        corpus.langs.push_back(r.lang);
        corpus.rows.push_back(file.data_row());
      });
  file.keep_storage(corpus.texts);
  file.finish();
  report.rows_kept = corpus.size();
  if (corpus.size() == 0)
    throw UserError(file.where() + ": no usable rows (header only, or every row is bad)");
  return corpus;
}

TextTable load_text_csv(const std::string& path, const TextColumns& columns,
                        const LoadOptions& options, LoadReport* report_out) {
  LoadReport local;
  LoadReport& report = report_out ? *report_out : local;
  JigsawFile file(path, options, report);
  const size_t text_col = *file.column(columns.text, "--text-column", false);
  std::optional<size_t> id_col;
  if (!columns.id.empty()) id_col = file.column(columns.id, "--id-column", false);

  TextTable table;
  auto convert = [&](const CsvRow& row, Slot& slot, RowResult& r) {
    if (id_col) {
      r.key = file.stripped(row.fields[*id_col], slot);
      // The ids are kept as UTF-8 strings (embed's HDF5 `ids`), which readers decode.
      if (!is_valid_utf8(r.key)) {
        r.problem = Problem::kIdNotUtf8;
        return;
      }
    }
    r.text = file.text(row.fields[text_col], slot, r);
  };
  file.parse(
      convert, [&](size_t rows) { table.texts.reserve(rows); },
      [&](const RowResult& r) {
        file.count_row();
        if (file.report_problem(r)) return;
        file.count_text(r);
        table.texts.push_back_view(r.text);
        if (id_col) table.ids.emplace_back(r.key);
        table.rows.push_back(file.data_row());
      });
  file.keep_storage(table.texts);
  file.finish();
  report.rows_kept = table.size();
  return table;
}

TestCorpus load_test_csv(const std::string& path, const TestColumns& columns,
                         const LoadOptions& options, LoadReport* report_out) {
  LoadReport local;
  LoadReport& report = report_out ? *report_out : local;
  JigsawFile file(path, options, report);
  const TestIndex at = find_columns(file, columns);
  const size_t id_col = at.id, text_col = at.text;
  const std::optional<size_t> lang_col = at.lang;

  auto convert = [&](const CsvRow& row, Slot& slot, RowResult& r) {
    const CsvField& id = row.fields[id_col];
    const std::string_view written =
        csv_field_value(id, slot.value, options.limits.max_field_bytes);
    if (!parse_id(written, r.id)) {
      r.problem = Problem::kId;
      r.text = file.copied(id, slot);
      return;
    }
    if (const std::string_view digits = trim_view(written); digits.size() > 1 && digits[0] == '0')
      r.key = slot.arena->copy(digits);  // a number: written back without its zeros
    file.lang_and_text(row, lang_col, text_col, slot, r);
  };
  TestCorpus corpus;
  std::unordered_map<int64_t, uint64_t> seen;  // id -> line
  file.parse(
      convert, [](size_t) {},
      [&](const RowResult& r) {
        file.count_row();
        // A duplicate id is checked after the id itself, before the language and the text.
        if (r.problem <= Problem::kId && file.report_problem(r)) return;
        auto [it, inserted] = seen.emplace(r.id, r.line);
        if (!inserted) {
          file.bad(
              r.line, "duplicate id",
              "(" + std::to_string(r.id) + ", first on line " + std::to_string(it->second) + ")");
          return;
        }
        if ((r.problem == Problem::kEmptyLang || r.problem == Problem::kBadLang) &&
            file.report_problem(r))
          return;
        file.count_text(r);
        if (file.report_problem(r)) return;
        if (!r.key.empty() && report.zero_padded_ids++ == 0)
          report.first_zero_padded = {r.line, std::string(r.key)};
        corpus.ids.push_back(r.id);
        corpus.texts.push_back_view(r.text);
        corpus.langs.push_back(r.lang);
        corpus.rows.push_back(file.data_row());
      });
  file.keep_storage(corpus.texts);
  file.finish();
  report.rows_kept = corpus.size();
  corpus.skipped = report.rows_read - report.rows_kept;
  if (corpus.size() == 0)
    throw UserError(file.where() + ": no usable rows (header only, or every row is bad)");
  return corpus;
}

}  // namespace sx::data
