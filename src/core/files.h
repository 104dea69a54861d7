// File-system helpers on POSIX calls.
//
// Why not std::filesystem: pip's libtorch 2.x exports its own build of some std::filesystem
// internals; in a process linked with it, path operations bound to that copy crashed
// (seen on the GPU machine with torch 2.11). These few helpers need nothing from libstdc++'s
// filesystem, so they behave the same whatever libtorch is linked.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace sx::files {

bool exists(const std::string& path);
bool is_directory(const std::string& path);
uint64_t size(const std::string& path);  // 0 when missing
// Creates `path` and its parents; throws std::runtime_error with the reason on failure.
void create_directories(const std::string& path);
// Removes a file or a whole tree; missing is fine.
void remove_all(const std::string& path);
// Atomic within one file system; throws std::runtime_error on failure.
void rename(const std::string& from, const std::string& to);
// Writes `path` so that it is either the old file or the whole new one, even across a crash:
// `write` fills a temporary file in the same directory, which is fsynced, renamed over `path`,
// and the directory fsynced. If `write` (or any step) throws, the temporary is removed and the
// exception passes on; `path` is untouched.
void write_atomically(const std::string& path,
                      const std::function<void(const std::string&)>& write);
// fsync(2) of a file or a directory; throws std::runtime_error on failure.
void fsync_path(const std::string& path);
// Entries of a directory (names only, no "." or ".."), sorted.
std::vector<std::string> list(const std::string& dir);

std::string join(const std::string& a, const std::string& b);
std::string parent(const std::string& path);
std::string temp_dir();
// Directory of the running executable, or "" if unknown.
std::string executable_dir();

}  // namespace sx::files
