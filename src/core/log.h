// Logging set-up: spdlog's default logger, one line format carrying rank/world, rank 0 at
// its level and the other ranks quieter, and one log file per rank in the run directory.
// Code logs with spdlog::info(...) and friends.
#pragma once

#include <string>

#include "core/config.h"  // LogLevel

namespace sx {

struct LogOptions {
  int rank = 0;
  int world = 1;
  LogLevel level = LogLevel::kInfo;        // level of rank 0
  LogLevel other_level = LogLevel::kWarn;  // level of the other ranks (terminal)
  std::string file;                        // "" = no log file
};

void init_logging(const LogOptions& options);
// Adds run_dir/log/rank-<r>.log to the current logger (every level of `level` and above).
std::string add_rank_log_file(const std::string& run_dir, int rank, int world, LogLevel level);
void flush_logs();
// A line that launch/run.sh reads on the terminal (rank 0's layout, its stop with a checkpoint,
// its job-time line at the end): on the terminal whatever its level, in the files at theirs.
// A quieter run.log_level kept them from the launcher, which then took a stop for a failure.
void log_for_launcher(LogLevel level, const std::string& text);
// A fatal error's text, as a critical line in the log files only (flushed): the terminal gets
// the command's own one-line error instead of the same text twice.
void log_error_to_files(const std::string& text);

}  // namespace sx
