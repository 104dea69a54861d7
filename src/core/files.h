// File-system helpers on POSIX calls.
//
// Why not std::filesystem: pip's libtorch 2.x exports its own build of some std::filesystem
// internals; in a process linked with it, path operations bound to that copy crashed
// (seen on the GPU machine with torch 2.11). These few helpers need nothing from libstdc++'s
// filesystem, so they behave the same whatever libtorch is linked.
//
// Their failures throw sx::UserError (a std::runtime_error) naming the path and the system's
// reason: a full disk, a missing directory or a permission is for the user or operator to fix,
// and the program exits 2 (core/error.h).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace sx::files {

bool exists(const std::string& path);
bool is_directory(const std::string& path);
uint64_t size(const std::string& path);  // 0 when missing
// Creates `path` and its parents; throws UserError with the reason on failure.
void create_directories(const std::string& path);
// Removes a file or a whole tree; missing is fine.
void remove_all(const std::string& path);
// Atomic within one file system; throws UserError on failure.
void rename(const std::string& from, const std::string& to);
// rename() that never replaces: when `to` exists (another process wrote it meanwhile), throws
// UserError saying so and leaves both files as they are. Where the file system cannot rename
// without replacing (renameat2's RENAME_NOREPLACE) it links and unlinks, else it checks first.
void rename_no_replace(const std::string& from, const std::string& to);
// A file written from the start (created, or truncated when it exists). Every failure, of
// open, write, fsync or close, throws UserError naming the path and the system's
// reason ("cannot write F: No space left on device"). Small writes are gathered into blocks
// of kBlock bytes (a CSV written a field at a time), so a failure may be reported by a later
// write() or by close().
class FileWriter {
 public:
  explicit FileWriter(const std::string& path);
  ~FileWriter();  // closes without a check when close() was not reached (an exception)
  FileWriter(const FileWriter&) = delete;
  FileWriter& operator=(const FileWriter&) = delete;
  void write(const void* data, size_t size);
  void write(std::string_view text) { write(text.data(), text.size()); }
  void put(char c) {
    buffer_ += c;
    if (buffer_.size() >= kBlock) flush();
  }
  // Writes what is gathered, syncs the file to its device and closes it.
  void close();

 private:
  static constexpr size_t kBlock = size_t{1} << 20;
  void flush();
  void write_through(const char* p, size_t size);
  std::string path_;
  int fd_ = -1;
  std::string buffer_;
};

// FileWriter over the whole of `bytes`.
void write_file(const std::string& path, std::string_view bytes);

// Files that replace their targets together or not at all as far as writing goes (a full
// disk, an I/O error, a writer that throws): commit() has each writer fill a temporary next to
// its target (PATH.tmp.PID) and syncs it; only once every one is written are they renamed over
// their targets, in the order added, and the directories synced. When a write fails, every
// temporary (and, with Parents::kCreate, every directory commit() made) is removed, no target
// has changed, and the exception passes on. A crash between two of the renames can leave some
// targets new and the others old, each of them whole.
// With Replace::kRefuse (a command without --force that found no target) a target that
// appears meanwhile is not replaced (rename_no_replace): of two processes writing the same set
// at once, the one whose first rename comes second fails and leaves no file of its own.
class FileSet {
 public:
  using Writer = std::function<void(const std::string& tmp)>;
  enum class Parents { kMustExist, kCreate };  // the targets' directories
  enum class Replace { kAllowed, kRefuse };    // targets that exist when they are renamed over
  explicit FileSet(Parents parents = Parents::kMustExist, Replace replace = Replace::kAllowed)
      : parents_(parents), replace_(replace) {}
  void add(const std::string& path, Writer write);
  void commit();

 private:
  struct Entry {
    std::string path, tmp;
    Writer write;
  };
  void write_all(std::vector<std::string>& created);
  void rename_all(const std::vector<std::string>& created);
  Parents parents_;
  Replace replace_;
  std::vector<Entry> entries_;
};

// Writes `path` so that it is either the old file or the whole new one, even across a crash:
// a FileSet of one file (its directory must exist).
void write_atomically(const std::string& path, const std::function<void(const std::string&)>& write,
                      FileSet::Replace replace = FileSet::Replace::kAllowed);
// write_atomically of `bytes` (write_file).
void write_file_atomically(const std::string& path, std::string_view bytes);
// The temporary a FileSet of this process fills beside `path`: "PATH.tmp.PID".
std::string temporary_path(const std::string& path);
// The target of a FileSet temporary's file name ("NAME.tmp.PID", any pid): NAME; "" when
// `name` is not one.
std::string temporary_target(const std::string& name);
// fsync(2) of a file or a directory; throws UserError on failure.
void fsync_path(const std::string& path);
// Entries of a directory (names only, no "." or ".."), sorted.
std::vector<std::string> list(const std::string& dir);

std::string join(const std::string& a, const std::string& b);
std::string parent(const std::string& path);
std::string temp_dir();
// Directory of the running executable, or "" if unknown.
std::string executable_dir();

}  // namespace sx::files
