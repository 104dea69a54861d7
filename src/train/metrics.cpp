#include "train/metrics.h"

#include <nlohmann/json.hpp>

#include <cmath>

#include "core/error.h"

namespace sx::train {
namespace {
// JSON has no NaN/inf: write null for them.
nlohmann::json number(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
}
}  // namespace

MetricsLog::MetricsLog(const std::string& path) {
  file_ = std::fopen(path.c_str(), "a");
  if (!file_) throw UserError("run.dir: cannot write " + path);
}

MetricsLog::~MetricsLog() {
  if (file_) std::fclose(file_);
}

void MetricsLog::line(const std::string& json) {
  if (!file_) return;
  std::fputs(json.c_str(), file_);
  std::fputc('\n', file_);
  std::fflush(file_);
}

void MetricsLog::step(int64_t step, int64_t epoch, double loss, double lr, double pairs_per_s,
                      double tokens_per_s, bool skipped, double step_s, double allreduce_s) {
  line(nlohmann::json{{"type", "step"},
                      {"step", step},
                      {"epoch", epoch},
                      {"loss", number(loss)},
                      {"lr", lr},
                      {"pairs_per_s", number(pairs_per_s)},
                      {"tokens_per_s", number(tokens_per_s)},
                      {"skipped", skipped},
                      {"step_s", step_s},
                      {"allreduce_s", allreduce_s}}
           .dump());
}

void MetricsLog::epoch(int64_t epoch, int64_t step, double val_loss, double best_val_loss,
                       bool improved, double elapsed_s, double train_loss) {
  line(nlohmann::json{{"type", "epoch"},
                      {"epoch", epoch},
                      {"step", step},
                      {"val_loss", number(val_loss)},
                      {"best_val_loss", number(best_val_loss)},
                      {"improved", improved},
                      {"elapsed_s", elapsed_s},
                      {"loss", number(train_loss)}}
           .dump());
}

void MetricsLog::event(const std::string& name, int64_t step, const std::string& detail) {
  line(nlohmann::json{{"type", "event"}, {"event", name}, {"step", step}, {"detail", detail}}
           .dump());
}

}  // namespace sx::train
