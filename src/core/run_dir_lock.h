// One command at a time writes a run directory: train (rank 0, for the whole run), export and
// predict (while they work) and evaluate (while it writes evaluation.json) each hold an flock on
// run_dir/.lock, which says who holds it:
// "`COMMAND` (pid P on HOST)". A second one into the same directory is refused with one line
// naming the holder, instead of mixing its files with a live command's or replacing them in
// turn. The kernel drops the lock however the holder ends, so a requeued job never finds a
// stale one.
#pragma once

#include <optional>
#include <string>

namespace sx {

class RunDirLock {
 public:
  // Creates run_dir and takes its lock for `command` (train, export, predict, evaluate), or
  // throws a UserError: "run.dir D is in use by `train` (pid P on HOST), which is still running:
  // wait for it to end, or <way_out>". Where the file system has no locks, logs a warning and
  // holds nothing.
  RunDirLock(const std::string& run_dir, const std::string& command,
             const std::string& way_out = "give this command another run.dir");
  // A reader's hold (export-hf publishing the run's weights): refused as above while a writer
  // holds run_dir, shared with other readers, and nothing is created or written (the
  // directory may be read-only); a directory without a .lock has no holder.
  struct Reading {};
  RunDirLock(Reading, const std::string& run_dir, const std::string& way_out);
  ~RunDirLock();

  // Who holds run_dir as a writer, found without holding anything; nullopt when no writer does.
  struct Holder {
    // "train", "export", "predict" or "evaluate" ("train" too for a training of an earlier
    // version, which wrote "pid P on HOST" alone); "" when the holder has not written itself yet.
    std::string command;
    std::string who;  // as refusals name it: "`train` (pid P on HOST)"
    // "run.dir D is in use by <who>, which is still running: wait for it to end, or <way_out>"
    std::string refusal(const std::string& run_dir, const std::string& way_out) const;
  };
  static std::optional<Holder> writer(const std::string& run_dir);

  RunDirLock(const RunDirLock&) = delete;
  RunDirLock& operator=(const RunDirLock&) = delete;

 private:
  void record_holder(const std::string& path, const std::string& command);
  [[noreturn]] void refuse(const std::string& run_dir, const std::string& way_out);
  int fd_ = -1;
};

}  // namespace sx
