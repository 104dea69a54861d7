#include "core/log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "core/error.h"
#include "core/files.h"

namespace sx {
namespace {

std::string pattern(int rank, int world) {
  return "[%Y-%m-%d %H:%M:%S.%e] [" + std::to_string(rank) + "/" + std::to_string(world) +
         "] [%^%l%$] %v";
}

}  // namespace

void init_logging(const LogOptions& options) {
  auto console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  const std::string& level = options.rank == 0 ? options.level : options.other_level;
  console->set_level(spdlog::level::from_str(level));
  auto logger = std::make_shared<spdlog::logger>("sx", console);
  logger->set_level(spdlog::level::trace);
  logger->set_pattern(pattern(options.rank, options.world));
  spdlog::set_default_logger(logger);
  if (!options.file.empty()) {
    auto file = std::make_shared<spdlog::sinks::basic_file_sink_mt>(options.file);
    file->set_level(spdlog::level::from_str(options.level));
    file->set_pattern(pattern(options.rank, options.world));
    logger->sinks().push_back(file);
  }
  logger->flush_on(spdlog::level::warn);
  spdlog::flush_every(std::chrono::seconds(5));  // log files of long runs stay current
}

std::string add_rank_log_file(const std::string& run_dir, int rank, int world,
                              const std::string& level) {
  const std::string dir = files::join(run_dir, "log");
  try {
    files::create_directories(dir);
  } catch (const std::exception& e) {
    throw UserError(std::string("run.dir: ") + e.what());
  }
  std::string path = files::join(dir, "rank-" + std::to_string(rank) + ".log");
  try {
    auto file = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path);
    file->set_level(spdlog::level::from_str(level));
    file->set_pattern(pattern(rank, world));
    spdlog::default_logger()->sinks().push_back(file);
  } catch (const spdlog::spdlog_ex& e) {
    throw UserError("run.dir: cannot open log file " + path + ": " + e.what());
  }
  return path;
}

void flush_logs() {
  spdlog::default_logger()->flush();
}

}  // namespace sx
