// A file read through a memory mapping faults with SIGBUS where the file no longer has the bytes:
// truncated, or rewritten in place (by `cp`, an editor, a download) while a command reads it.
// The process used to die of the signal, under mpirun with Open MPI's backtrace. A mapping
// registered here ends the process instead with one line naming the file, and exit code 2
// (kExitUserError):
//
//   siamese-xlmr: error: data/test.csv changed on disk while it was being read (now 0 bytes,
//   123456 when opened: truncated or rewritten in place); ...
//
// The SIGBUS handler does only what is safe in a signal handler: the registry is a fixed array
// whose entries are published through atomics when a file is mapped, the line is put together
// on the stack (stat(2) for the file's size now) and written with write(2) to stderr (and a
// rank's log, also_report_faults_to), and the process
// ends with _exit(2). A SIGBUS at any other address, or one sent by kill, goes to the action
// that was installed before (Open MPI's backtrace, or the default: a core dump) as if this
// handler were not there. A rewrite that keeps the file's size changes the texts without a
// fault: only a shrinking file is caught.
#pragma once

#include <cstddef>
#include <string>

namespace sx {

// Mappings guarded at once; more are mapped unguarded (they fault as before).
inline constexpr int kMaxGuardedMappings = 64;

// Registers [begin, begin + size) as a mapping of `path` and installs the SIGBUS handler when
// it is not the current one (so it also comes back after a library replaced it). Returns the
// handle to pass to unguard_mapping before unmapping, or -1 when the registry is full.
int guard_mapping(const void* begin, size_t size, const std::string& path);
// Forgets the mapping of `handle` (-1: nothing).
void unguard_mapping(int handle);
// Where the line is written besides stderr: `fd`, a file open for appending (a rank's log, so
// that the log holds its rank's last words); -1 for nowhere else. Returns the descriptor it
// replaces (-1 when none), for the caller to close.
int also_report_faults_to(int fd);

}  // namespace sx
