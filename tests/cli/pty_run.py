#!/usr/bin/env python3
"""Runs a command on a pseudo-terminal of its own, as an operator's interactive shell runs it,
and types Ctrl-C when told to.

Usage: pty_run.py [--ctrl-c-when FILE:TEXT:COUNT]... [--limit S] -- CMD [ARGS...]

Each --ctrl-c-when, in order, waits until FILE holds TEXT at least COUNT times, then types a
Ctrl-C (the terminal sends SIGINT to its foreground process group: the command's, here). The
terminal's output goes to stdout; the exit code is the command's (128 + N when signal N ended
it). A command still running --limit seconds (default 180) after the start is killed with its
process group; the exit code is then 124, and a wait that was not met also ends with 124.
"""
import argparse
import os
import pty
import select
import signal
import sys
import time


def exit_code(status):  # as a shell reports it: 128 + N for a command ended by signal N
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ctrl-c-when", action="append", default=[])
    parser.add_argument("--limit", type=float, default=180)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command")
    waits = []
    for spec in args.ctrl_c_when:
        path, rest = spec.split(":", 1)
        text, count = rest.rsplit(":", 1)
        waits.append((path, text, int(count)))

    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(command[0], command)
    end = time.monotonic() + args.limit
    status = None

    def pump(seconds):  # copies the terminal's output for up to `seconds`; False at its end
        ready, _, _ = select.select([fd], [], [], seconds)
        if not ready:
            return True
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: every process holding the terminal has gone
            return False
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return bool(data)

    def count(path, text):
        try:
            with open(path, errors="replace") as f:
                return f.read().count(text)
        except OSError:
            return 0

    def finish(code):
        try:
            os.killpg(pid, signal.SIGKILL)  # the command leads the terminal's session
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
        sys.exit(code)

    open_ = True
    for path, text, want in waits:
        while count(path, text) < want:
            if time.monotonic() > end:
                print(f"\npty_run.py: {path} did not hold {text!r} {want} times", flush=True)
                finish(124)
            open_ = pump(0.1) and open_
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                print(f"\npty_run.py: the command ended before {path} held {text!r} {want} times",
                      flush=True)
                sys.exit(exit_code(st) or 124)
        os.write(fd, b"\x03")
    while status is None:
        if time.monotonic() > end:
            print(f"\npty_run.py: still running after {args.limit:g} s", flush=True)
            finish(124)
        open_ = open_ and pump(0.1)
        if not open_:
            time.sleep(0.05)
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = st
    while open_ and pump(0.2):  # what it wrote before it ended
        pass
    sys.exit(exit_code(status))


if __name__ == "__main__":
    main()
