"""Block-parallel gzip, the way pigz does it: one gzip member, its blocks deflated on several threads.

The input is cut into fixed-size blocks. Each is compressed as raw deflate with the previous
block's last 32 KiB as its dictionary, ending in a sync flush (the last one in a finish), so
the pieces concatenate into one valid deflate stream; each block's crc32 is combined in order
into the trailer's. Where a block starts and which dictionary it gets depend on the input
alone, so the output is the same bytes whatever the thread timing or the number of threads.

isal releases the GIL while it deflates, so the blocks really run in parallel. A bounded number
of blocks is in flight per writer (memory stays at a few MiB), and all writers share one pool of
CPU-count threads. A writer that is abandoned (the copy failed) leaves only running blocks
behind, which finish on their own and are dropped.
"""

from __future__ import annotations

import os
import struct
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO

#: bytes per block: large enough that flush markers and dictionary priming cost nothing
BLOCK = 1 << 20
_DICT = 32 << 10
#: gzip header: deflate, no name, mtime 0, XFL 0, OS unknown (what isal's igzip writes at levels 1-3)
_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
_HEADER_FASTEST = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\xff"

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def threads() -> int:
    return max(1, len(os.sched_getaffinity(0)))


def _shared_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=threads(), thread_name_prefix="pgzip")
        return _pool


def _deflate(level: int, block: bytes, dictionary: bytes, last: bool) -> tuple[bytes, int, int]:
    from isal import isal_zlib

    if dictionary:
        c = isal_zlib.compressobj(level, isal_zlib.DEFLATED, -15, zdict=dictionary)
    else:
        c = isal_zlib.compressobj(level, isal_zlib.DEFLATED, -15)
    out = c.compress(block) + c.flush(isal_zlib.Z_FINISH if last else isal_zlib.Z_SYNC_FLUSH)
    return out, isal_zlib.crc32(block), len(block)


class ParallelGzipWriter:
    """Writes one gzip member to `sink`; close() finishes it and leaves the sink open."""

    def __init__(self, sink: BinaryIO, level: int = 2, block: int = BLOCK, max_pending: int | None = None) -> None:
        self._sink = sink
        self._level = level
        self._block = block
        self._max_pending = max_pending or threads() + 1  # every thread busy, one block queued
        self._buf = bytearray()
        self._dict = b""
        self._pending: deque[Future[tuple[bytes, int, int]]] = deque()
        self._crc = 0
        self._size = 0
        self._closed = False
        sink.write(_HEADER_FASTEST if level == 0 else _HEADER)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        n = len(data)
        start = 0
        if not self._buf and isinstance(data, bytes):
            # whole blocks straight from the caller's (immutable) bytes: the block the stream usually
            # writes is passed on as it is, a larger write is cut with one copy per block
            while n - start >= self._block:
                self._submit(data if n == self._block else data[start:start + self._block], last=False)
                start += self._block
            if start == n:
                return n
        self._buf += data[start:] if start else data
        while len(self._buf) >= self._block:
            with memoryview(self._buf) as view:
                block = bytes(view[: self._block])  # one copy (a bytearray slice would be a second)
            del self._buf[: self._block]
            self._submit(block, last=False)
        return n

    def _submit(self, block: bytes, last: bool) -> None:
        while len(self._pending) >= self._max_pending:
            self._emit_oldest()
        self._pending.append(_shared_pool().submit(_deflate, self._level, block, self._dict, last))
        self._dict = block[-_DICT:]
        self._size += len(block)

    def _emit_oldest(self) -> None:
        from isal import isal_zlib

        out, crc, n = self._pending.popleft().result()
        self._sink.write(out)
        self._crc = isal_zlib.crc32_combine(self._crc, crc, n)  # crc of (all so far + this block)

    def flush(self) -> None:
        """Nothing to do: blocks are cut at fixed offsets, never at flush points (that keeps the output stable)."""

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        last = bytes(self._buf)
        self._buf = bytearray()
        self._submit(last, last=True)
        while self._pending:
            self._emit_oldest()
        self._sink.write(struct.pack("<II", self._crc & 0xFFFFFFFF, self._size & 0xFFFFFFFF))
