"""Files a user names as an output (archives, signatures, --digestfile, --iidfile, keys, auth files).

A regular file (or a new one) is replaced atomically: a temp file beside it, fsync, rename, so a
reader never sees half of it and a crash leaves the old one. Anything else that exists, a
character device (/dev/null), a FIFO, /dev/stdout, is written into as it is, as skopeo does:
renaming over /dev/null would replace the host's /dev/null with a regular file. A symlink to a
regular file keeps its link; the file it points at is replaced.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO

TEMP_PREFIX = ".tmp-"
_MAX_LINKS = 40


def _through_fd_link(path: str) -> bool:
    """Whether `path` names an open descriptor (/dev/stdout -> /proc/self/fd/1, /dev/fd/N)."""
    p = os.path.abspath(path)
    for _ in range(_MAX_LINKS):
        if p.startswith(("/proc/", "/dev/fd/")):
            return True
        try:
            target = os.readlink(p)
        except OSError:
            return False
        p = os.path.normpath(os.path.join(os.path.dirname(p), target))
    return False


def writes_in_place(path: str | os.PathLike[str]) -> bool:
    """True when `path` exists and is no regular file (device, FIFO, socket) or is an open descriptor."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return not stat.S_ISREG(st.st_mode) or _through_fd_link(os.fspath(path))


def _spool_dir() -> str:
    return os.environ.get("TMPDIR") or "/var/tmp"


def fsync_dir(path: str | os.PathLike[str]) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class OutputFile:
    """A temp file that becomes the output at `path` on commit(), or vanishes on abort().

    For a regular target the temp file sits beside it and is renamed over it; for a device or
    FIFO it is spooled in `spool_dir` and copied into the target (the writer may seek back).
    """

    def __init__(self, path: str | os.PathLike[str], mode: int = 0o644, spool_dir: str | None = None) -> None:
        self.path = Path(path)
        self.mode = mode
        self.in_place = writes_in_place(path)
        if self.in_place:
            self.target = self.path
            where = spool_dir or _spool_dir()
        else:
            self.target = Path(os.path.realpath(path))  # a symlink stays; what it points at is replaced
            where = str(self.target.parent)
        self.fd, self.tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{self.path.name}-", dir=where)
        os.fchmod(self.fd, mode & 0o700 if self.in_place else mode)
        self._done = False

    def open(self) -> BinaryIO:
        """The temp file as a binary file object (it owns the descriptor from now on)."""
        return os.fdopen(self.fd, "w+b")

    def commit(self) -> None:
        """Publish what was written to the temp file (whose descriptor the caller has closed)."""
        try:
            if self.in_place:
                self._copy_into_target()
                os.unlink(self.tmp)
            else:
                fd = os.open(self.tmp, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(self.tmp, self.target)
                fsync_dir(self.target.parent)
            self._done = True
        except BaseException:
            self.abort()
            raise

    def _copy_into_target(self) -> None:
        flags = os.O_WRONLY | getattr(os, "O_CLOEXEC", 0)
        with open(self.tmp, "rb") as src, os.fdopen(os.open(self.target, flags), "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        try:
            os.unlink(self.tmp)
        except FileNotFoundError:
            pass


def write_output(path: str | os.PathLike[str], data: bytes, mode: int = 0o644) -> None:
    """Write `data` as the user's output file `path` (see the module docstring)."""
    if writes_in_place(path):
        flags = os.O_WRONLY | getattr(os, "O_CLOEXEC", 0)
        with os.fdopen(os.open(path, flags), "wb") as f:
            f.write(data)
        return
    out = OutputFile(path, mode)
    try:
        with out.open() as f:
            f.write(data)
    except BaseException:
        out.abort()
        raise
    out.commit()


def write_new_output(path: str | os.PathLike[str], data: bytes, mode: int) -> None:
    """Write a new output that must not exist yet (a private key): created whole, never over another file."""
    out = OutputFile(path, mode)
    try:
        with out.open() as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.link(out.tmp, out.target)  # fails if `path` appeared meanwhile
        fsync_dir(out.target.parent)
    finally:
        out.abort()
