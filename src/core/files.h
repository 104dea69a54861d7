// File-system helpers on POSIX calls.
//
// Why not std::filesystem: pip's libtorch 2.x exports its own build of some std::filesystem
// internals; in a process linked with it, path operations bound to that copy crashed
// (seen on the GPU machine with torch 2.11). These few helpers need nothing from libstdc++'s
// filesystem, so they behave the same whatever libtorch is linked.
#pragma once

#include <cstdint>
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
// Entries of a directory (names only, no "." or ".."), sorted.
std::vector<std::string> list(const std::string& dir);

std::string join(const std::string& a, const std::string& b);
std::string parent(const std::string& path);
std::string temp_dir();
// Directory of the running executable, or "" if unknown.
std::string executable_dir();

}  // namespace sx::files
