"""Compressing writers that use several CPUs for one stream, with output independent of thread timing.

gzip: block-parallel deflate (pgzip.py). zstd: libzstd's own workers (nbWorkers >= 1 gives the
same bytes for any number of workers, so a layer's digest does not depend on the machine).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import BinaryIO, Iterator

from imagetool import pgzip

#: zstd job size: libzstd's default for level 3 is 8 MiB per worker, each buffered twice, and a
#: copy runs a zstd stream per CPU: 512 KiB jobs keep the peak within budget (measured: 8 MiB
#: jobs +50 MiB for a 3-layer rewrite, 512 KiB +15 MiB) for about 3% in size on text
ZSTD_JOB = 512 << 10
#: each job starts from the end of the one before as its prefix, which it hashes first: level 3's default
#: (overlapLog 6) is an eighth of the 2 MiB window, 256 KiB per 512 KiB job, half again the hashing of the job
#: itself (10% of a 500 MiB gzip -> zstd rewrite's CPU); 4 (64 KiB) costs 0.9% in size on a real 1.3 GB /usr
#: tar (472.2 against 467.8 MB). 1 MiB jobs win that back, but cost 10-15 MiB more at the peak of a
#: 5-layer rewrite for no CPU measured
ZSTD_OVERLAP_LOG = 4
#: bytes of compressed output per write to the sink (one read of the copy's streams, digest.CHUNK)
ZSTD_OUT = 1 << 20

_active = 0
#: zstd streams that copies running now will write side by side (they say so before they start)
_expected = 0
_active_lock = threading.Lock()


@contextmanager
def side_by_side(streams: int) -> Iterator[None]:
    """While a copy rewrites `streams` layers at once, each zstd stream gets a share of the CPUs from the first.

    Without it the first stream took every CPU for its workers before the others had started,
    and its workers then competed with theirs (and with the decompressing and hashing threads).
    """
    global _expected
    with _active_lock:
        _expected += streams
    try:
        yield
    finally:
        with _active_lock:
            _expected -= streams


class _ZstdWriter:
    """A multithreaded zstd frame; close() finishes it and leaves the sink open.

    The CPUs are shared among the zstd streams running at once (the bytes do not depend on it).
    """

    def __init__(self, sink: BinaryIO, level: int | None) -> None:
        import zstandard

        global _active
        with _active_lock:
            workers = max(1, pgzip.threads() // max(_active + 1, _expected))
            _active += 1
        self.workers = workers
        self._open = True
        params = zstandard.ZstdCompressionParameters.from_level(3 if level is None else level,
                                                                threads=workers, job_size=ZSTD_JOB,
                                                                overlap_log=ZSTD_OVERLAP_LOG)
        # output handed on in pieces of up to ZSTD_OUT, not libzstd's 128 KiB: a reader hashes and writes each
        self._w = zstandard.ZstdCompressor(compression_params=params).stream_writer(sink, closefd=False,
                                                                                    write_size=ZSTD_OUT)

    def _release(self) -> None:
        global _active
        if self._open:
            self._open = False
            with _active_lock:
                _active -= 1

    def __del__(self) -> None:  # an abandoned stream (failed copy) gives its share back too
        self._release()

    def write(self, data: bytes) -> int:
        self._w.write(data)
        return len(data)

    def close(self) -> None:
        try:
            self._w.close()
        finally:
            self._release()


def parallel_compressor(sink: BinaryIO, algorithm: str, level: int | None, isal_level: int) -> BinaryIO:
    """A writer of `algorithm` (gzip or zstd) that compresses on several threads."""
    if algorithm == "gzip":
        return pgzip.ParallelGzipWriter(sink, isal_level)  # type: ignore[return-value]
    return _ZstdWriter(sink, level)  # type: ignore[return-value]
