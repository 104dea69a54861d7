#include "data/jigsaw.h"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <unordered_map>

#include "core/error.h"
#include "core/progress.h"
#include "core/strings.h"
#include "data/text.h"

namespace sx::data {
namespace {

constexpr size_t kProblemsListed = 5;

// Shared row-level machinery: header lookup, bad-row bookkeeping and the fail/skip policy.
class RowChecker {
 public:
  RowChecker(const std::string& path, const LoadOptions& options, LoadReport& report)
      : path_(path),
        options_(options),
        report_(report),
        reader_(path, options.limits),
        progress_("loading " + path, reader_.total_bytes(), options.progress_interval,
                  options.progress) {
    report_.path = path;
    if (!reader_.next(header_))
      throw UserError(where() + ": the file is empty, expected a header line and rows");
    if (header_.unterminated_quote || header_.field_too_long)
      throw UserError(where() + ":1: the header line is malformed");
  }

  std::string where() const { return (options_.key.empty() ? "" : options_.key + ": ") + path_; }

  // Index of a column; throws when it is missing unless optional.
  std::optional<size_t> column(const std::string& name, const std::string& key, bool optional) {
    for (size_t i = 0; i < header_.fields.size(); ++i)
      if (trim(header_.fields[i]) == name) return i;
    if (optional) return std::nullopt;
    throw UserError(where() + ":1: missing column '" + name + "' (" + key +
                    "); the header has: " + join(header_.fields, ", "));
  }

  // Next structurally sound record; bad ones are reported and skipped (or fail).
  bool next(CsvRecord& record) {
    while (reader_.next(record)) {
      ++report_.rows_read;
      ++data_row_;
      if ((report_.rows_read & 0x3FFF) == 0) {  // progress in bytes, cheaply
        progress_.advance(reader_.bytes_read() - shown_);
        shown_ = reader_.bytes_read();
      }
      if (record.unterminated_quote) {
        bad(record, "quoted field not closed before the end of the file");
        continue;
      }
      if (record.field_too_long) {
        bad(record,
            "field longer than " + std::to_string(options_.limits.max_field_bytes) + " bytes");
        continue;
      }
      if (record.field_count != header_.fields.size()) {
        bad(record, "wrong number of fields",
            "(expected " + std::to_string(header_.fields.size()) + ", found " +
                std::to_string(record.field_count) + ")");
        continue;
      }
      return true;
    }
    return false;
  }

  int64_t data_row() const { return data_row_; }

  // Reports a bad row under `reason` (the detail text names the specific value).
  void bad(const CsvRecord& record, const std::string& reason, const std::string& detail = "") {
    auto& stat = report_.bad_rows[reason];
    ++stat.count;
    if (stat.first_lines.size() < kProblemsListed) stat.first_lines.push_back(record.line);
    if (problems_.size() < kProblemsListed)
      problems_.push_back("line " + std::to_string(record.line) + ": " + reason +
                          (detail.empty() ? "" : " " + detail));
    if (options_.bad_rows == BadRows::kFail && problems_.size() >= kProblemsListed) {
      stopped_early_ = true;
      finish();
    }
  }

  // Text cleaned as the notebook reads it; empty -> reported.
  bool take_text(const CsvRecord& record, std::string& text) {
    size_t dropped = sanitize_utf8(text);
    if (dropped) {
      report_.invalid_utf8_bytes += dropped;
      ++report_.texts_with_invalid_utf8;
    }
    if (trim(text).empty()) {
      bad(record, "empty text");
      return false;
    }
    return true;
  }

  void finish() {
    progress_.advance(reader_.bytes_read() - shown_);
    shown_ = reader_.bytes_read();
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
  CsvReader reader_;
  CsvRecord header_;
  Progress progress_;
  uint64_t shown_ = 0;
  int64_t data_row_ = -1;
  bool stopped_early_ = false;
  std::vector<std::string> problems_;
};

bool parse_label(const std::string& text, double& value) {
  std::string t = trim(text);
  if (t.empty()) return false;
  errno = 0;
  char* end = nullptr;
  value = std::strtod(t.c_str(), &end);
  return !errno && *end == '\0' && std::isfinite(value) && value >= 0.0 && value <= 1.0;
}

bool parse_id(const std::string& text, int64_t& value) {
  std::string t = trim(text);
  if (t.empty() || t.size() > 18) return false;
  for (char c : t)
    if (c < '0' || c > '9') return false;
  value = std::strtoll(t.c_str(), nullptr, 10);
  return true;
}

}  // namespace

BadRows parse_bad_rows(const std::string& name) {
  if (name == "fail") return BadRows::kFail;
  if (name == "skip") return BadRows::kSkip;
  throw UserError("data.bad_rows expects one of fail|skip, found '" + name + "'");
}

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
  for (const auto& [reason, stat] : bad_rows) {
    std::vector<std::string> lines;
    for (auto l : stat.first_lines) lines.push_back(std::to_string(l));
    spdlog::warn("{}: skipped {} rows: {} (lines {}{})", path, stat.count, reason,
                 join(lines, ", "), stat.count > stat.first_lines.size() ? ", ..." : "");
  }
}

LabeledCorpus load_labeled_csv(const std::string& path, const LabeledColumns& columns,
                               const LoadOptions& options, LoadReport* report_out) {
  LoadReport local;
  LoadReport& report = report_out ? *report_out : local;
  RowChecker rows(path, options, report);
  const size_t text_col = *rows.column(columns.text, "data.text_field", false);
  std::vector<size_t> label_cols;
  for (const auto& name : columns.labels)
    label_cols.push_back(*rows.column(name, "label fields", false));
  const std::optional<size_t> lang_col = rows.column(columns.lang, "data.lang_field", true);

  LabeledCorpus corpus;
  CsvRecord record;
  while (rows.next(record)) {
    double label = 0;
    bool ok = true;
    for (size_t k = 0; k < label_cols.size(); ++k) {
      const std::string& field = record.fields[label_cols[k]];
      double v;
      if (!parse_label(field, v)) {
        rows.bad(record, "label is not a number in [0, 1]",
                 "(" + columns.labels[k] + " = " + quote_value(field) + ")");
        ok = false;
        break;
      }
      label = std::max(label, v);
    }
    if (!ok) continue;
    std::string lang = lang_col ? trim(record.fields[*lang_col]) : std::string("en");
    if (lang.empty()) {
      rows.bad(record, "empty language");
      continue;
    }
    if (!rows.take_text(record, record.fields[text_col])) continue;
    corpus.texts.push_back(std::move(record.fields[text_col]));
    corpus.labels.push_back(label >= options.label_threshold ? 1 : 0);
    corpus.langs.push_back(std::move(lang));
    corpus.rows.push_back(rows.data_row());
  }
  rows.finish();
  report.rows_kept = corpus.size();
  if (corpus.size() == 0)
    throw UserError(rows.where() + ": no usable rows (header only, or every row is bad)");
  return corpus;
}

TestCorpus load_test_csv(const std::string& path, const TestColumns& columns,
                         const LoadOptions& options, LoadReport* report_out) {
  LoadReport local;
  LoadReport& report = report_out ? *report_out : local;
  RowChecker rows(path, options, report);
  const size_t id_col = *rows.column(columns.id, "data.test_id_field", false);
  const size_t text_col = *rows.column(columns.text, "data.test_text_field", false);
  const std::optional<size_t> lang_col = rows.column(columns.lang, "data.test_lang_field", true);

  TestCorpus corpus;
  std::unordered_map<int64_t, uint64_t> seen;  // id -> line
  CsvRecord record;
  while (rows.next(record)) {
    int64_t id;
    if (!parse_id(record.fields[id_col], id)) {
      rows.bad(record, "id is not a non-negative integer",
               "(" + quote_value(record.fields[id_col]) + ")");
      continue;
    }
    auto [it, inserted] = seen.emplace(id, record.line);
    if (!inserted) {
      rows.bad(record, "duplicate id",
               "(" + std::to_string(id) + ", first on line " + std::to_string(it->second) + ")");
      continue;
    }
    std::string lang = lang_col ? trim(record.fields[*lang_col]) : std::string("en");
    if (lang.empty()) {
      rows.bad(record, "empty language");
      continue;
    }
    if (!rows.take_text(record, record.fields[text_col])) continue;
    corpus.ids.push_back(id);
    corpus.texts.push_back(std::move(record.fields[text_col]));
    corpus.langs.push_back(std::move(lang));
    corpus.rows.push_back(rows.data_row());
  }
  rows.finish();
  report.rows_kept = corpus.size();
  if (corpus.size() == 0)
    throw UserError(rows.where() + ": no usable rows (header only, or every row is bad)");
  return corpus;
}

}  // namespace sx::data
