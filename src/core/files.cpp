#include "core/files.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "core/error.h"

namespace sx::files {

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

uint64_t size(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

namespace {

[[noreturn]] void fail(const std::string& what, const std::string& path, int error) {
  throw UserError(what + " " + path + ": " + std::strerror(error));
}

// create_directories that appends each directory it made to `created` (parents first).
void make_directories(const std::string& path, std::vector<std::string>* created) {
  if (path.empty() || is_directory(path)) return;
  std::string p = parent(path);
  if (!p.empty() && p != path) make_directories(p, created);
  if (::mkdir(path.c_str(), 0777) == 0) {
    if (created) created->push_back(path);
  } else if (errno != EEXIST) {
    fail("cannot create directory", path, errno);
  }
  if (!is_directory(path)) throw UserError(path + " exists and is not a directory");
}

std::string directory_of(const std::string& path) {
  const std::string dir = parent(path);
  return dir.empty() ? "." : dir;
}

}  // namespace

void create_directories(const std::string& path) {
  make_directories(path, nullptr);
}

void remove_all(const std::string& path) {
  if (!exists(path)) return;
  ::nftw(
      path.c_str(),
      [](const char* p, const struct stat*, int, struct FTW*) { return ::remove(p) == 0 ? 0 : 0; },
      16, FTW_DEPTH | FTW_PHYS);
}

void rename(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0)
    throw UserError("cannot rename " + from + " to " + to + ": " + std::strerror(errno));
}

void rename_no_replace(const std::string& from, const std::string& to) {
  const auto appeared = [&] {
    return UserError(to +
                     " appeared while this command wrote it (another process writing the "
                     "same output?); it is left as it is: pass --force to overwrite it");
  };
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return;
  if (errno == EEXIST) throw appeared();
  if (errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)  // (the file system cannot)
    throw UserError("cannot rename " + from + " to " + to + ": " + std::strerror(errno));
  if (::link(from.c_str(), to.c_str()) == 0) {
    ::unlink(from.c_str());
    return;
  }
  if (errno == EEXIST) throw appeared();
  if (exists(to)) throw appeared();  // no hard links either: checked, then renamed
  rename(from, to);
}

void fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw UserError("cannot open " + path + " to sync: " + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  if (rc != 0) throw UserError("cannot sync " + path + ": " + std::strerror(error));
}

FileWriter::FileWriter(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd_ < 0) fail("cannot create", path, errno);
}

FileWriter::~FileWriter() {
  if (fd_ >= 0) ::close(fd_);
}

void FileWriter::write(const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  if (buffer_.size() + size < kBlock) {
    buffer_.append(p, size);
    return;
  }
  flush();
  write_through(p, size);
}

void FileWriter::flush() {
  write_through(buffer_.data(), buffer_.size());
  buffer_.clear();
}

void FileWriter::write_through(const char* p, size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd_, p, std::min<size_t>(size, size_t{1} << 30));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("cannot write", path_, n < 0 ? errno : EIO);
    p += n;
    size -= static_cast<size_t>(n);
  }
}

void FileWriter::close() {
  flush();
  const int fd = fd_;
  fd_ = -1;
  if (::fsync(fd) != 0) {
    const int error = errno;
    ::close(fd);
    fail("cannot sync", path_, error);
  }
  if (::close(fd) != 0) fail("cannot close", path_, errno);
}

void write_file(const std::string& path, std::string_view bytes) {
  FileWriter out(path);
  out.write(bytes);
  out.close();
}

namespace {
constexpr std::string_view kTemporaryInfix = ".tmp.";
}  // namespace

std::string temporary_path(const std::string& path) {
  return path + std::string(kTemporaryInfix) + std::to_string(::getpid());
}

std::string temporary_target(const std::string& name) {
  const size_t at = name.rfind(kTemporaryInfix);
  const size_t digits = at == std::string::npos ? 0 : at + kTemporaryInfix.size();
  if (at == std::string::npos || at == 0 || digits == name.size()) return "";
  for (size_t i = digits; i < name.size(); ++i)
    if (name[i] < '0' || name[i] > '9') return "";
  return name.substr(0, at);
}

void FileSet::add(const std::string& path, Writer write) {
  entries_.push_back({path, temporary_path(path), std::move(write)});
}

void FileSet::commit() {
  std::vector<std::string> created;
  try {
    write_all(created);
  } catch (...) {
    for (const Entry& e : entries_) ::unlink(e.tmp.c_str());
    for (auto dir = created.rbegin(); dir != created.rend(); ++dir) ::rmdir(dir->c_str());
    throw;
  }
  rename_all(created);
}

void FileSet::write_all(std::vector<std::string>& created) {
  for (const Entry& e : entries_) {
    if (parents_ == Parents::kCreate) make_directories(parent(e.path), &created);
    e.write(e.tmp);
    fsync_path(e.tmp);
  }
}

void FileSet::rename_all(const std::vector<std::string>& created) {
  std::vector<std::string> dirs;
  for (size_t i = 0; i < entries_.size(); ++i) {
    try {
      if (replace_ == Replace::kRefuse)
        rename_no_replace(entries_[i].tmp, entries_[i].path);
      else
        rename(entries_[i].tmp, entries_[i].path);
    } catch (...) {
      for (size_t j = i; j < entries_.size(); ++j) ::unlink(entries_[j].tmp.c_str());
      throw;
    }
    dirs.push_back(directory_of(entries_[i].path));
  }
  for (const std::string& dir : created) dirs.push_back(directory_of(dir));
  std::sort(dirs.begin(), dirs.end());
  dirs.erase(std::unique(dirs.begin(), dirs.end()), dirs.end());
  for (const std::string& dir : dirs) fsync_path(dir);
}

void write_atomically(const std::string& path, const std::function<void(const std::string&)>& write,
                      FileSet::Replace replace) {
  FileSet set(FileSet::Parents::kMustExist, replace);
  set.add(path, write);
  set.commit();
}

void write_file_atomically(const std::string& path, std::string_view bytes) {
  write_atomically(path, [&](const std::string& tmp) { write_file(tmp, bytes); });
}

std::vector<std::string> list(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") out.push_back(name);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

std::string join(const std::string& a, const std::string& b) {
  if (a.empty() || (!b.empty() && b[0] == '/')) return b;
  return a.back() == '/' ? a + b : a + "/" + b;
}

std::string parent(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  auto slash = p.rfind('/');
  if (slash == std::string::npos) return "";
  return slash == 0 ? "/" : p.substr(0, slash);
}

std::string temp_dir() {
  const char* t = std::getenv("TMPDIR");
  return t && *t ? t : "/tmp";
}

std::string executable_dir() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "";
  buf[n] = '\0';
  return parent(buf);
}

}  // namespace sx::files
