"""Temp files that say whether their writer is alive: the writer holds an flock on its file.

A killed writer leaves its `.tmp-*` file behind (up to a layer's size); the next writer or gc
removes it. They take a non-blocking flock first and remove only what they can lock, so a live
writer's file is never touched. A file written to less than GRACE seconds ago is left alone
too: it may belong to a writer between creating its file and locking it.
"""

from __future__ import annotations

import fcntl
import os
import stat
import tempfile
import time
from pathlib import Path
from typing import Iterable

TEMP_PREFIX = ".tmp-"
GRACE = 2.0


def create(directory: str | Path, prefix: str = TEMP_PREFIX) -> tuple[int, str]:
    """mkstemp in `directory`, locked for as long as the descriptor is open (rename before closing it)."""
    fd, path = tempfile.mkstemp(prefix=prefix, dir=directory)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    return fd, path


def sweep(directories: Iterable[str | Path], prefix: str = TEMP_PREFIX) -> list[Path]:
    """Remove the temp files in `directories` whose writer is gone; returns what was removed."""
    removed: list[Path] = []
    now = time.time()
    for directory in directories:
        try:
            names = [n for n in os.listdir(directory) if n.startswith(prefix)]
        except (FileNotFoundError, NotADirectoryError):
            continue
        for name in names:
            path = Path(directory) / name
            if _remove_if_dead(path, now):
                removed.append(path)
    return removed


def _remove_if_dead(path: Path, now: float) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False  # gone already, a directory's entry we cannot open, or a symlink: not ours to judge
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or now - st.st_mtime < GRACE:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # its writer is alive
        try:
            same = os.stat(path, follow_symlinks=False).st_ino == st.st_ino
        except FileNotFoundError:
            return False
        if same:
            os.unlink(path)
        return same
    finally:
        os.close(fd)
