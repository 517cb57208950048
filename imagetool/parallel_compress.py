"""Compressing writers that use several CPUs for one stream, with output independent of thread timing.

gzip: block-parallel deflate (pgzip.py). zstd: libzstd's own workers (nbWorkers >= 1 gives the
same bytes for any number of workers, so a layer's digest does not depend on the machine).
"""

from __future__ import annotations

from typing import BinaryIO

from imagetool import pgzip

#: zstd job size: libzstd's default for level 3 is 8 MiB per worker, each buffered twice;
#: 2 MiB jobs keep a copy's memory flat and still give every worker enough to chew on
ZSTD_JOB = 2 << 20


class _ZstdWriter:
    """A multithreaded zstd frame; close() finishes it and leaves the sink open."""

    def __init__(self, sink: BinaryIO, level: int | None) -> None:
        import zstandard

        params = zstandard.ZstdCompressionParameters.from_level(3 if level is None else level,
                                                                threads=pgzip.threads(), job_size=ZSTD_JOB)
        self._w = zstandard.ZstdCompressor(compression_params=params).stream_writer(sink, closefd=False)

    def write(self, data: bytes) -> int:
        self._w.write(data)
        return len(data)

    def close(self) -> None:
        self._w.close()


def parallel_compressor(sink: BinaryIO, algorithm: str, level: int | None, isal_level: int) -> BinaryIO:
    """A writer of `algorithm` (gzip or zstd) that compresses on several threads."""
    if algorithm == "gzip":
        return pgzip.ParallelGzipWriter(sink, isal_level)  # type: ignore[return-value]
    return _ZstdWriter(sink, level)  # type: ignore[return-value]
