"""flock-based locks between imagetool processes sharing one store.

A lock path may be a directory: its descriptor takes the flock, so a layout is locked without
lock files of its own (an OCI layout a user names holds only what the image-spec lists).
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from contextlib import contextmanager
from typing import Iterator

from imagetool.errors import StoreLocked


@contextmanager
def file_lock(path: str, *, shared: bool = False, timeout: float = 300.0) -> Iterator[None]:
    """Hold an flock on `path` (a directory, or a file created if needed) for the body of the with-block."""
    if os.path.isdir(path):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    else:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                break
            except OSError as err:
                if err.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise StoreLocked(f"timed out waiting for lock {path}") from err
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


class HeldLock:
    """A lock held across calls (a destination holds the store's use-lock from open to close)."""

    def __init__(self, path: str, *, shared: bool, timeout: float = 300.0) -> None:
        self._cm = file_lock(path, shared=shared, timeout=timeout)
        self._cm.__enter__()
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._cm.__exit__(None, None, None)
