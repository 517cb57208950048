"""Blobs are written without waiting for the disk and made durable together at commit.

A blob's own file name is its digest, which names nothing yet: only index.json does. So a
writer renames each blob into place as soon as it is verified, without an fsync, and asks the
kernel to start writing it back (sync_file_range, which does not wait). Right before index.json
names an image, `flush` fsyncs every blob this process wrote or reused in that layout since the
last commit (cheap by then: the writeback is mostly done), so a power loss never leaves
index.json naming a blob whose content is not on disk.
"""

from __future__ import annotations

import ctypes
import os
import threading
from pathlib import Path

_SYNC_FILE_RANGE_WRITE = 2
#: how much a writer lets pile up before it hands the range to writeback
WRITEBACK_STEP = 8 << 20

_lock = threading.Lock()
_pending: dict[str, set[str]] = {}
_libc: ctypes.CDLL | None = None
_libc_tried = False


def _sync_file_range() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    global _libc, _libc_tried
    if not _libc_tried:
        _libc_tried = True
        try:
            # the C library already loaded: find_library would run `ldconfig -p` (a fork and exec)
            _libc = ctypes.CDLL(None, use_errno=True)
            fn = _libc.sync_file_range
            fn.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
            fn.restype = ctypes.c_int
        except (OSError, AttributeError):
            _libc = None
    return _libc.sync_file_range if _libc is not None else None


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Queue `length` bytes at `offset` of `fd` for writeback without waiting (a hint: errors are ignored)."""
    fn = _sync_file_range()
    if fn is not None:
        fn(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def note(root: Path, path: str | Path) -> None:
    """`path` (a blob in the layout at `root`) must be durable before `root`'s next index update."""
    with _lock:
        _pending.setdefault(os.path.realpath(root), set()).add(str(path))


def flush(root: Path) -> bool:
    """fsync every blob noted for `root` (the caller fsyncs the blob directories after this); False if none."""
    key = os.path.realpath(root)
    with _lock:
        paths = _pending.pop(key, set())
    try:
        for path in sorted(paths):
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # taken away again (gc of a failed copy): nothing will name it
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    except BaseException:
        with _lock:  # not done: the next commit tries again
            _pending.setdefault(key, set()).update(paths)
        raise
    return bool(paths)
