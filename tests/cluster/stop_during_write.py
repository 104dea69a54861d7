#!/usr/bin/env python3
"""Stops a process while it writes a file: waits (inotify) for a file matching PATTERN to be
created in DIR, stops PID (SIGSTOP) at once, and if the file is still there, i.e. the writer
has not yet renamed it into place, prints its name and exits 0 with PID left stopped. If the
write was already over, PID goes on (SIGCONT) and the next such file is tried.

Usage: stop_during_write.py DIR PATTERN PID SECONDS [READY]   (exit 1 when SECONDS pass first)
READY: a file made once DIR is watched, for a caller that then starts the write.
"""
import ctypes
import fnmatch
import os
import select
import signal
import struct
import sys
import time

IN_CREATE = 0x100
EVENT = struct.Struct("iIII")  # struct inotify_event without its name


def main():
    folder, pattern, pid, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init()
    if fd < 0 or libc.inotify_add_watch(fd, folder.encode(), IN_CREATE) < 0:
        sys.exit(f"stop_during_write: cannot watch {folder}: {os.strerror(ctypes.get_errno())}")
    if len(sys.argv) > 5:
        open(sys.argv[5], "w").close()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if not select.select([fd], [], [], max(0.0, end - time.monotonic()))[0]:
            break
        data = os.read(fd, 65536)
        offset = 0
        while offset < len(data):
            _, _, _, size = EVENT.unpack_from(data, offset)
            name = data[offset + EVENT.size : offset + EVENT.size + size].rstrip(b"\0").decode()
            offset += EVENT.size + size
            if not fnmatch.fnmatch(name, pattern):
                continue
            os.kill(pid, signal.SIGSTOP)
            if os.path.exists(os.path.join(folder, name)):
                print(name)
                return 0
            os.kill(pid, signal.SIGCONT)
    print(f"stop_during_write: no {pattern} caught in {folder} within {seconds:.0f} s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
