#include "train/metrics.h"

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>

#include "core/error.h"
#include "core/files.h"

namespace sx::train {
namespace {
// JSON has no NaN/inf: write null for them.
nlohmann::json number(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
}
}  // namespace

MetricsRepair repair_metrics(const std::string& path, int64_t keep_through_step) {
  MetricsRepair repair;
  if (!files::exists(path)) return repair;
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()), kept;
  in.close();
  if (!text.empty() && text.back() != '\n') {
    repair.torn_tail = true;
    text.erase(text.find_last_of('\n') == std::string::npos ? 0 : text.find_last_of('\n') + 1);
  }
  size_t number = 0;
  for (size_t at = 0; at < text.size();) {
    const size_t end = text.find('\n', at);
    const std::string line = text.substr(at, end - at);
    at = end + 1;
    ++number;
    const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
      repair.corrupt_lines.push_back(number);
    } else if (keep_through_step >= 0 && j.contains("step") && j["step"].is_number_integer() &&
               j["step"].get<int64_t>() > keep_through_step) {
      ++repair.past_step;
    } else {
      kept += line + "\n";
    }
  }
  if (repair.dropped() == 0) return repair;
  try {
    files::write_file_atomically(path, kept);
  } catch (const std::runtime_error& e) {
    throw UserError(std::string("run.dir: ") + e.what());
  }
  return repair;
}

namespace {

void log_repair(const std::string& path, const MetricsRepair& r, int64_t keep_through_step) {
  if (r.past_step)
    spdlog::info("{}: dropped {} lines past step {} (the checkpoint this run resumes)", path,
                 r.past_step, keep_through_step);
  if (r.torn_tail)
    spdlog::warn(
        "{}: dropped its torn last line (its writer was killed, or its disk filled, mid-line)",
        path);
  if (!r.corrupt_lines.empty()) {
    std::string numbers;
    for (size_t n : r.corrupt_lines) numbers += (numbers.empty() ? "" : ", ") + std::to_string(n);
    spdlog::warn("{}: dropped {} lines that are not JSON objects (lines {})", path,
                 r.corrupt_lines.size(), numbers);
  }
}

}  // namespace

MetricsLog::MetricsLog(const std::string& path, int64_t keep_through_step) : path_(path) {
  log_repair(path, repair_metrics(path, keep_through_step), keep_through_step);
  file_ = std::fopen(path.c_str(), "a");
  if (!file_) throw UserError("run.dir: cannot write " + path + ": " + std::strerror(errno));
}

MetricsLog::~MetricsLog() {
  if (file_) std::fclose(file_);
}

void MetricsLog::line(const std::string& json) {
  if (!file_) return;
  // A line that cannot be written (a full disk) ends the run rather than losing the metrics
  // silently; a torn last line is dropped by the repair of a resumed run.
  if (std::fputs(json.c_str(), file_) < 0 || std::fputc('\n', file_) == EOF ||
      std::fflush(file_) != 0)
    throw UserError("run.dir: cannot write " + path_ + ": " + std::strerror(errno));
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
                       bool improved, double elapsed_s, double train_loss, const CentroidAuc* auc) {
  nlohmann::json j{{"type", "epoch"},
                   {"epoch", epoch},
                   {"step", step},
                   {"val_loss", number(val_loss)},
                   {"best_val_loss", number(best_val_loss)},
                   {"improved", improved},
                   {"elapsed_s", elapsed_s},
                   {"loss", number(train_loss)}};
  if (auc) {
    nlohmann::json by_language = nlohmann::json::object();
    for (const auto& [language, value] : auc->by_language) by_language[language] = number(value);
    j["centroid_auc"] = by_language;
    j["centroid_auc_mean"] = number(auc->mean);
    j["centroid_auc_s"] = auc->seconds;
  }
  line(j.dump());
}

void MetricsLog::start(const RunStart& s) {
  const bool resumed = !s.resumed_from.empty();
  line(nlohmann::json{{"type", "event"},
                      {"event", "start"},
                      {"step", s.step},
                      {"detail", resumed ? "resumed from " + s.resumed_from : "fresh start"},
                      {"resumed_from", resumed ? nlohmann::json(s.resumed_from) : nullptr},
                      {"world_size", s.world_size},
                      {"global_batch", s.global_batch},
                      {"config_hash", s.config_hash}}
           .dump());
}

void MetricsLog::event(const std::string& name, int64_t step, const std::string& detail) {
  line(nlohmann::json{{"type", "event"}, {"event", name}, {"step", step}, {"detail", detail}}
           .dump());
}

}  // namespace sx::train
