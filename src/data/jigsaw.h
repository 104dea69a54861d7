// Loading the Jigsaw CSV files as the notebook's load_train_set / load_test_set do, with
// every malformed row reported (file, line, reason) and nothing dropped silently. Texts and
// languages are read as the notebook reads them: undecodable bytes dropped, then str.strip()
// (a text or language that is only whitespace is empty). The file is mapped and parsed in
// parallel (csv_parser.h); the texts stay views of the mapping where they can.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/config.h"
#include "data/corpus.h"
#include "data/csv_parser.h"

namespace sx::data {

using sx::BadRows;  // data.bad_rows (core/config.h)

struct LabeledColumns {
  std::string text = "comment_text";
  std::vector<std::string> labels = {"toxic"};
  std::string lang = "lang";  // a file without this column is English
};

struct TestColumns {
  std::string id = "id";
  std::string text = "content";
  std::string lang = "lang";
};

// Any CSV with a text column (embed --csv): the column names, as options name them.
struct TextColumns {
  std::string text;
  std::string id;  // "" = no id column
};

// The texts of such a file in file order, cleaned and stripped as the Jigsaw texts are; an
// empty text is kept (every usable row gives one text).
struct TextTable {
  TextColumn texts;
  std::vector<std::string> ids;  // the id column's values (stripped); empty without one
  std::vector<int64_t> rows;     // 0-based data-row numbers

  size_t size() const { return texts.size(); }
};

struct LoadOptions {
  std::string key;  // config key naming the file, for messages ("data.train_csv")
  BadRows bad_rows = BadRows::kFail;
  double label_threshold = 0.5;
  CsvLimits limits;
  CsvParallel parallel;  // parsing threads (0 = all cores) and chunk size
  bool progress = false;
  double progress_interval = 30;
};

struct BadRowStat {
  uint64_t count = 0;
  std::vector<uint64_t> first_lines;  // up to 5
  std::vector<uint64_t> first_spans;  // the physical lines each of those records runs over
};

struct LoadReport {
  std::string path;
  uint64_t rows_read = 0;
  uint64_t rows_kept = 0;
  uint64_t invalid_utf8_bytes = 0;
  uint64_t texts_with_invalid_utf8 = 0;
  std::map<std::string, BadRowStat> bad_rows;  // by reason
  // Test ids written with leading zeros ("007", read as the number 7), and the first (line, id
  // as written).
  uint64_t zero_padded_ids = 0;
  std::pair<uint64_t, std::string> first_zero_padded;

  uint64_t bad_row_count() const;
  // Logs the counts (info) and each skip reason (warn).
  void log() const;
};

LabeledCorpus load_labeled_csv(const std::string& path, const LabeledColumns& columns,
                               const LoadOptions& options, LoadReport* report = nullptr);
// The checks of load_labeled_csv / load_test_csv that read the header line alone (the file is
// not empty nor UTF-16, its header is well formed and has the columns named), with the same
// UserError: a wrong file is refused before the work that a whole load would come after.
void check_header(const std::string& path, const LabeledColumns& columns,
                  const LoadOptions& options);
void check_header(const std::string& path, const TestColumns& columns, const LoadOptions& options);

// Rows with a structural problem (unterminated quote, over-long field, wrong field count)
// are handled as options.bad_rows says; `key` names the option giving the file.
TextTable load_text_csv(const std::string& path, const TextColumns& columns,
                        const LoadOptions& options, LoadReport* report = nullptr);
TestCorpus load_test_csv(const std::string& path, const TestColumns& columns,
                         const LoadOptions& options, LoadReport* report = nullptr);

}  // namespace sx::data
