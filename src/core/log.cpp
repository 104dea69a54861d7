#include "core/log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <unistd.h>

#include "core/error.h"
#include "core/files.h"
#include "core/mapping_guard.h"
#include "core/progress.h"

namespace sx {
namespace {

// The terminal sink: takes a progress bar's status line off the screen for each log line
// and puts it back below (core/progress.h), so a bar never shares a line with a log line.
class ConsoleSink : public spdlog::sinks::sink {
 public:
  void log(const spdlog::details::log_msg& msg) override {
    StatusLinePause pause;
    stderr_.log(msg);
    stderr_.flush();
  }
  void flush() override { stderr_.flush(); }
  void set_pattern(const std::string& pattern) override { stderr_.set_pattern(pattern); }
  void set_formatter(std::unique_ptr<spdlog::formatter> formatter) override {
    stderr_.set_formatter(std::move(formatter));
  }

 private:
  spdlog::sinks::stderr_color_sink_mt stderr_;
};

std::string pattern(int rank, int world) {
  return "[%Y-%m-%d %H:%M:%S.%e] [" + std::to_string(rank) + "/" + std::to_string(world) +
         "] [%^%l%$] %v";
}

}  // namespace

void init_logging(const LogOptions& options) {
  auto console = std::make_shared<ConsoleSink>();
  const LogLevel level = options.rank == 0 ? options.level : options.other_level;
  console->set_level(spdlog::level::from_str(name_of(level)));
  auto logger = std::make_shared<spdlog::logger>("sx", console);
  logger->set_level(spdlog::level::trace);
  logger->set_pattern(pattern(options.rank, options.world));
  spdlog::set_default_logger(logger);
  if (!options.file.empty()) {
    auto file = std::make_shared<spdlog::sinks::basic_file_sink_mt>(options.file);
    file->set_level(spdlog::level::from_str(name_of(options.level)));
    file->set_pattern(pattern(options.rank, options.world));
    logger->sinks().push_back(file);
  }
  // Every line but debug and trace ones reaches the files at once: a process that ends without
  // running its destructors (a fatal signal, MPI_Abort) lost up to the last 5 s of its log.
  logger->flush_on(spdlog::level::info);
  spdlog::flush_every(std::chrono::seconds(5));  // and those within 5 s
}

std::string add_rank_log_file(const std::string& run_dir, int rank, int world, LogLevel level) {
  const std::string dir = files::join(run_dir, "log");
  try {
    files::create_directories(dir);
  } catch (const std::exception& e) {
    throw UserError(std::string("run.dir: ") + e.what());
  }
  std::string path = files::join(dir, "rank-" + std::to_string(rank) + ".log");
  try {
    auto file = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path);
    file->set_level(spdlog::level::from_str(name_of(level)));
    file->set_pattern(pattern(rank, world));
    spdlog::default_logger()->sinks().push_back(file);
  } catch (const spdlog::spdlog_ex& e) {
    throw UserError("run.dir: cannot open log file " + path + ": " + e.what());
  }
  // The one fatal line written from a signal handler (a data file that shrank under its
  // mapping) goes into the log too, through a descriptor of its own that the process keeps.
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd >= 0) {
    const int replaced = also_report_faults_to(fd);  // (tests set up several runs)
    if (replaced >= 0) ::close(replaced);
  }
  return path;
}

void flush_logs() {
  spdlog::default_logger()->flush();
}

namespace {
// Writes one message to the default logger's sinks that `keep` picks, past the logger's level,
// and flushes them. Best effort: a sink that cannot take it (a full disk under the log file)
// adds no line of its own ("*** LOG ERROR ***") to the one the command ends with.
template <class Keep>
void log_to_sinks(spdlog::level::level_enum level, const std::string& text, Keep keep) {
  const auto logger = spdlog::default_logger();
  const spdlog::details::log_msg msg(logger->name(), level, text);
  for (const auto& sink : logger->sinks()) {
    if (!keep(*sink, dynamic_cast<ConsoleSink*>(sink.get()) != nullptr)) continue;
    try {
      sink->log(msg);
      sink->flush();
    } catch (const std::exception&) {
    }
  }
}
}  // namespace

void log_for_launcher(LogLevel level, const std::string& text) {
  const auto lvl = spdlog::level::from_str(name_of(level));
  log_to_sinks(lvl, text,
               [&](spdlog::sinks::sink& s, bool console) { return console || s.should_log(lvl); });
}

void log_error_to_files(const std::string& text) {
  log_to_sinks(spdlog::level::critical, text, [](spdlog::sinks::sink& s, bool console) {
    return !console && s.should_log(spdlog::level::critical);
  });
}

}  // namespace sx
