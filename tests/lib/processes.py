"""Processes a test starts and waits on: in the background, on a terminal of their own, found in /proc."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def start(argv: Sequence[str], **kw: object) -> subprocess.Popen[str]:
    """`argv` in the background, its output piped (as text)."""
    return subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kw)  # type: ignore[call-overload]


def wait_until(what: Callable[[], T], timeout: float = 30) -> T:
    """Ask `what` every 50 ms until it answers something true, and return that answer; AssertionError after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = what()
        if found:
            return found
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def pids(needle: bytes, uid: int | None = None) -> list[int]:
    """Processes whose command line (arguments NUL-separated) contains `needle`, and owned by `uid` if given."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
            owner = os.stat(f"/proc/{entry}").st_uid
        except OSError:
            continue  # gone meanwhile
        if needle in cmdline and uid in (None, owner):
            found.append(int(entry))
    return found


def read_terminal(fd: int, seconds: float) -> bytes:
    """What a pty's other side wrote until it closed (EIO) or went quiet for `seconds`."""
    out = b""
    while select.select([fd], [], [], seconds)[0]:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    return out


def in_terminal(argv: Sequence[str], typed: bytes = b"", quiet: float = 30) -> tuple[bytes, int]:
    """`argv` on a new pseudo-terminal, `typed` written to it at once: what it wrote there (until it closed or
    went quiet for `quiet` seconds) and its exit status."""
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execvp(argv[0], list(argv))
        finally:
            os._exit(127)  # never back into the test runner
    try:
        if typed:
            os.write(fd, typed)
        out = read_terminal(fd, quiet)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    return out, os.waitstatus_to_exitcode(status)
