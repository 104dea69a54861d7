#include "core/run_dir_lock.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"
#include "core/files.h"

namespace sx {

RunDirLock::RunDirLock(const std::string& run_dir, const std::string& command,
                       const std::string& way_out) {
  try {
    files::create_directories(run_dir);
  } catch (const std::runtime_error& e) {
    throw UserError(std::string("run.dir: ") + e.what());
  }
  const std::string path = files::join(run_dir, ".lock");
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  if (fd_ < 0) throw UserError("run.dir: cannot open " + path + ": " + std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) == 0) {
    record_holder(path, command);
    return;
  }
  const int error = errno;
  if (error == EWOULDBLOCK && ::flock(fd_, LOCK_SH | LOCK_NB) == 0) {
    // Readers alone hold it (export-hf publishing the run's weights, or predict looking for a
    // training's features for an instant): the holder in the file is the last writer, long gone.
    ::close(fd_);
    fd_ = -1;
    throw UserError("run.dir " + run_dir +
                    " is being read by `export-hf` (or `predict`), which is still running: wait "
                    "for it to end, or " +
                    way_out);
  }
  if (error == EWOULDBLOCK) refuse(run_dir, way_out);
  spdlog::warn("run.dir: {} cannot be locked ({}): nothing stops a second command writing {}", path,
               std::strerror(error), run_dir);
  ::close(fd_);
  fd_ = -1;
}

RunDirLock::RunDirLock(Reading, const std::string& run_dir, const std::string& way_out) {
  const std::string path = files::join(run_dir, ".lock");
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) return;  // no holder ever, or nothing this reader may open: nothing to wait for
  if (::flock(fd_, LOCK_SH | LOCK_NB) == 0) return;
  if (errno == EWOULDBLOCK) refuse(run_dir, way_out);
  ::close(fd_);
  fd_ = -1;
}

RunDirLock::~RunDirLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock; the file stays (removing it would race)
}

void RunDirLock::record_holder(const std::string& path, const std::string& command) {
  char host[256] = "?";
  gethostname(host, sizeof host - 1);
  const std::string holder = "`" + command + "` (pid " +
                             std::to_string(static_cast<long>(getpid())) + " on " + host + ")\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, holder.data(), holder.size(), 0) < 0)
    spdlog::warn("run.dir: cannot write {}: {}", path, std::strerror(errno));
}

namespace {

// The holder `fd` (run_dir/.lock) records.
RunDirLock::Holder read_holder(int fd) {
  char text[256] = {};
  const ssize_t n = ::pread(fd, text, sizeof text - 1, 0);
  std::string record = n > 0 ? std::string(text, static_cast<size_t>(n)) : "";
  while (!record.empty() && (record.back() == '\n' || record.back() == '\r')) record.pop_back();
  if (record.empty()) return {"", "another command"};  // not written yet
  if (record.rfind("pid ", 0) == 0) return {"train", "a training (" + record + ")"};
  const size_t end =
      record.size() > 1 && record[0] == '`' ? record.find('`', 1) : std::string::npos;
  return {end == std::string::npos ? "" : record.substr(1, end - 1), record};
}

}  // namespace

std::string RunDirLock::Holder::refusal(const std::string& run_dir,
                                        const std::string& way_out) const {
  return "run.dir " + run_dir + " is in use by " + who +
         ", which is still running: wait for it to end, or " + way_out;
}

std::optional<RunDirLock::Holder> RunDirLock::writer(const std::string& run_dir) {
  const std::string path = files::join(run_dir, ".lock");
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::optional<Holder> holder;
  if (::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK) holder = read_holder(fd);
  ::close(fd);  // and with it a shared hold taken above
  return holder;
}

void RunDirLock::refuse(const std::string& run_dir, const std::string& way_out) {
  const Holder holder = read_holder(fd_);
  ::close(fd_);
  fd_ = -1;
  throw UserError(holder.refusal(run_dir, way_out));
}

}  // namespace sx
