// run.dir/metrics.jsonl: one JSON object per line, per step and per epoch, and events: the
// start (or resumption) of a run, its stop, its time (rank 0 writes). A resumed run first
// drops the lines of the steps after its checkpoint, so every step appears once.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace sx::train {

// The cross-lingual score of an epoch: centroid ROC-AUC per held-out language (NaN where
// the language has one class) and their mean.
struct CentroidAuc {
  std::vector<std::pair<std::string, double>> by_language;
  double mean = 0;
  double seconds = 0;  // what computing it took (embedding and scoring)
};

// What a run's first line says about it.
struct RunStart {
  int64_t step = 0;          // 0, or the checkpoint's step when resumed
  std::string resumed_from;  // the checkpoint's path; "" = a fresh start
  int64_t world_size = 0;
  int64_t global_batch = 0;
  std::string config_hash;
};

// What repair_metrics dropped from a metrics file.
struct MetricsRepair {
  size_t past_step = 0;               // lines of steps after the kept step
  bool torn_tail = false;             // a last line without its newline (its writer was killed)
  std::vector<size_t> corrupt_lines;  // 1-based numbers of other lines that do not parse
  size_t dropped() const { return past_step + (torn_tail ? 1 : 0) + corrupt_lines.size(); }
};

// Makes `path` ready for appending (rewritten atomically when anything goes; a missing file is
// fine): a torn last line is dropped, so the next line cannot fuse with it; so are lines that
// do not parse and, with keep_through_step >= 0 (a resumed run), lines of later steps.
MetricsRepair repair_metrics(const std::string& path, int64_t keep_through_step);

class MetricsLog {
 public:
  MetricsLog() = default;
  // Appends, after repair_metrics (logging what it dropped). keep_through_step >= 0: a resumed
  // run's checkpoint step.
  explicit MetricsLog(const std::string& path, int64_t keep_through_step = -1);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  void step(int64_t step, int64_t epoch, double loss, double lr, double pairs_per_s,
            double tokens_per_s, bool skipped, double step_s, double allreduce_s);
  void epoch(int64_t epoch, int64_t step, double val_loss, double best_val_loss, bool improved,
             double elapsed_s, double train_loss, const CentroidAuc* auc = nullptr);
  void start(const RunStart& start);
  void event(const std::string& name, int64_t step, const std::string& detail);

 private:
  void line(const std::string& json);
  std::string path_;
  std::FILE* file_ = nullptr;
};

}  // namespace sx::train
