// run.dir/metrics.jsonl: one JSON object per line, per step and per epoch (rank 0 writes).
#pragma once

#include <cstdio>
#include <string>

namespace sx::train {

class MetricsLog {
 public:
  MetricsLog() = default;
  explicit MetricsLog(const std::string& path);  // appends (a resumed run continues the file)
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  void step(int64_t step, int64_t epoch, double loss, double lr, double pairs_per_s,
            double tokens_per_s, bool skipped, double step_s, double allreduce_s);
  void epoch(int64_t epoch, int64_t step, double val_loss, double best_val_loss, bool improved,
             double elapsed_s, double train_loss);
  void event(const std::string& name, int64_t step, const std::string& detail);

 private:
  void line(const std::string& json);
  std::FILE* file_ = nullptr;
};

}  // namespace sx::train
