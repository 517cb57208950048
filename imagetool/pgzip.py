"""Block-parallel gzip, the way pigz does it: one gzip member, its blocks deflated on several threads.

The input is cut into fixed-size blocks. Each is compressed as raw deflate with the previous
block's last 32 KiB as its dictionary, ending in a sync flush (the last one in a finish), so
the pieces concatenate into one valid deflate stream; each block's crc32 is combined in order
into the trailer's. Where a block starts and which dictionary it gets depend on the input
alone, so the output is the same bytes whatever the thread timing or the number of threads.

Incompressible stretches (compressed files inside a layer, random bytes) are stored, not deflated:
deflate spends as long on them as on text and gains nothing. Each 256 KiB segment of a block is
probed at a few places with isal's fastest level, microseconds against the milliseconds a deflate
pass costs; runs of compressible segments are deflated together, stored ones become stored blocks.

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
#: a block is judged in segments of this size (the last, shorter one is always deflated)
_SEGMENT = 256 << 10
#: probes per segment, spread from its start to its end, and their size
_PROBES = 4
_PROBE = 2 << 10
#: isal's level 0 inflates a probe of random bytes by 27-30%, and shrinks anything deflate gains on (on a
#: real /usr tar, segments stored this way cost 0.16% in size)
_STORE_ABOVE = _PROBE * 120 // 100
#: a stored block holds at most 65535 bytes
_STORED_MAX = 0xFFFF
_STORED_PIECE = 512 << 10
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


def _incompressible(segment: memoryview) -> bool:
    """Whether deflating `segment` would gain nothing: every probe grows under isal's fastest level."""
    from isal import isal_zlib

    if len(segment) < _SEGMENT:
        return False
    step = (len(segment) - _PROBE) // (_PROBES - 1)
    return all(len(isal_zlib.compress(segment[k * step:k * step + _PROBE], 0, -15)) > _STORE_ABOVE
               for k in range(_PROBES))


def _runs(view: memoryview) -> list[tuple[int, int, bool]]:
    """The block as (start, end, stored) runs of like segments."""
    runs: list[tuple[int, int, bool]] = []
    for start in range(0, len(view), _SEGMENT):
        end = min(start + _SEGMENT, len(view))
        stored = _incompressible(view[start:end])
        if runs and runs[-1][2] == stored:
            runs[-1] = (runs[-1][0], end, stored)
        else:
            runs.append((start, end, stored))
    return runs


def _stored(view: memoryview, final: bool) -> list[bytes]:
    """`view` as stored deflate blocks (the stream is byte-aligned here: a sync flush or the start ends
    what came before), handed on in pieces of up to _STORED_PIECE: one copy of the bytes, few writes."""
    pieces = []
    count = -(-len(view) // _STORED_PIECE)
    size = -(-len(view) // count)  # pieces of even size: 1 MiB is two of 512 KiB
    for start in range(0, len(view), size):
        parts: list[bytes | memoryview] = []
        piece = view[start:start + size]
        for i in range(0, len(piece), _STORED_MAX):
            chunk = piece[i:i + _STORED_MAX]
            last = final and start + i + len(chunk) == len(view)
            parts += (struct.pack("<BHH", 1 if last else 0, len(chunk), len(chunk) ^ 0xFFFF), chunk)
        pieces.append(b"".join(parts))
    return pieces


def _deflate(level: int, block: bytes, dictionary: bytes, last: bool) -> tuple[list[bytes], int, int]:
    from isal import isal_zlib

    view = memoryview(block)
    runs = _runs(view) or [(0, 0, False)]
    pieces: list[bytes] = []
    for start, end, stored in runs:
        final = last and end == len(block)
        if stored:
            pieces += _stored(view[start:end], final)
            continue
        zdict = dictionary if start == 0 else view[start - _DICT:start]  # segments are longer than _DICT
        if zdict:
            c = isal_zlib.compressobj(level, isal_zlib.DEFLATED, -15, zdict=zdict)
        else:
            c = isal_zlib.compressobj(level, isal_zlib.DEFLATED, -15)
        # handed on as two pieces: joining them would copy the block's output once more
        pieces += (c.compress(view[start:end]),
                   c.flush(isal_zlib.Z_FINISH if final else isal_zlib.Z_SYNC_FLUSH))
    return [p for p in pieces if p], isal_zlib.crc32(block), len(block)


class ParallelGzipWriter:
    """Writes one gzip member to `sink`; close() finishes it and leaves the sink open."""

    def __init__(self, sink: BinaryIO, level: int = 2, block: int = BLOCK, max_pending: int | None = None) -> None:
        self._sink = sink
        self._level = level
        self._block = block
        self._max_pending = max_pending or threads() + 1  # every thread busy, one block queued
        self._buf = bytearray()
        self._dict = b""
        self._pending: deque[Future[tuple[list[bytes], int, int]]] = deque()
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

        pieces, crc, n = self._pending.popleft().result()
        for piece in pieces:
            self._sink.write(piece)
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
