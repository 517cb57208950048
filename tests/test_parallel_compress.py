"""Parallel gzip and zstd: valid single streams whose bytes depend on the input alone."""

from __future__ import annotations

import gzip
import io
import os
import random
import subprocess
import zlib

import pytest
import zstandard

from imagetool import compression, pgzip
from imagetool.parallel_compress import ZSTD_JOB, ZSTD_OVERLAP_LOG


def _sample(size: int, seed: int = 1) -> bytes:
    rnd = random.Random(seed)
    noise = rnd.randbytes(size // 3)
    text = b"".join(b"line %d of a layer\n" % rnd.randrange(1000) for _ in range(size // 10))
    return (noise + text)[:size]


def _gzip(data: bytes, *, max_pending: int, writes: list[int], block: int = pgzip.BLOCK) -> bytes:
    out = io.BytesIO()
    w = pgzip.ParallelGzipWriter(out, 2, block=block, max_pending=max_pending)
    i = k = 0
    while i < len(data):
        step = writes[k % len(writes)]
        w.write(data[i:i + step])
        i, k = i + step, k + 1
    w.close()
    return out.getvalue()


@pytest.mark.parametrize("size", [0, 1, pgzip.BLOCK - 1, pgzip.BLOCK, pgzip.BLOCK + 1, 3 * pgzip.BLOCK + 12345])
def test_pgzip_is_one_valid_member_with_stable_bytes(size: int) -> None:
    data = _sample(size)
    outs = {_gzip(data, max_pending=p, writes=w) for p, w in [(1, [1 << 20]), (2, [4096, 70000]), (9, [333]),
                                                              (3, [5 * pgzip.BLOCK // 2, pgzip.BLOCK])]}
    assert len(outs) == 1, "output depends on write sizes or how many blocks are in flight"
    out = outs.pop()
    d = zlib.decompressobj(31)
    assert d.decompress(out) == data
    assert d.eof and not d.unused_data  # exactly one member, nothing after it
    assert gzip.decompress(out) == data
    # the system gzip agrees (crc32 and size in the trailer included)
    assert subprocess.run(["gzip", "-t"], input=out).returncode == 0
    assert out[:4] == b"\x1f\x8b\x08\x00" and out[4:8] == b"\0\0\0\0"  # no name, mtime 0


def test_pgzip_blocks_are_compressed_with_the_previous_block_as_dictionary() -> None:
    """A block repeating the one before costs almost nothing: the dictionary is there."""
    block = 32 << 10  # the dictionary is the last 32 KiB: the whole previous block here
    part = random.Random(3).randbytes(block)
    out = _gzip(part * 4, max_pending=4, writes=[block], block=block)
    assert gzip.decompress(out) == part * 4
    assert len(out) < 2 * block


def test_compressor_uses_several_threads_and_stays_deterministic() -> None:
    data = _sample(6 << 20, seed=5)
    results = {}
    for algorithm in compression.ALGORITHMS:
        outs = set()
        for chunk in (1 << 20, 12345):
            sink = io.BytesIO()
            w = compression.compressor(sink, algorithm)
            for i in range(0, len(data), chunk):
                w.write(data[i:i + chunk])
            w.close()
            assert not sink.closed
            outs.add(sink.getvalue())
        assert len(outs) == 1, algorithm
        results[algorithm] = outs.pop()
    assert gzip.decompress(results["gzip"]) == data
    assert zstandard.ZstdDecompressor().stream_reader(io.BytesIO(results["zstd"])).read() == data


def test_zstd_bytes_do_not_depend_on_the_number_of_workers() -> None:
    data = _sample(5 << 20, seed=9)
    outs = set()
    for threads in (1, 2, 3):
        params = zstandard.ZstdCompressionParameters.from_level(3, threads=threads, job_size=ZSTD_JOB,
                                                                overlap_log=ZSTD_OVERLAP_LOG)
        sink = io.BytesIO()
        w = zstandard.ZstdCompressor(compression_params=params).stream_writer(sink, closefd=False)
        w.write(data)
        w.close()
        outs.add(sink.getvalue())
    assert len(outs) == 1


def test_pgzip_thread_count_does_not_change_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _sample(3 << 20, seed=11)
    first = _gzip(data, max_pending=4, writes=[1 << 20])
    monkeypatch.setattr(pgzip, "_pool", pgzip.ThreadPoolExecutor(max_workers=1))
    try:
        assert _gzip(data, max_pending=4, writes=[1 << 20]) == first
    finally:
        pgzip._pool.shutdown()  # type: ignore[union-attr]
        monkeypatch.setattr(pgzip, "_pool", None)
    assert os.cpu_count()


def test_zstd_streams_written_side_by_side_share_the_cpus_from_the_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first of several layers rewritten at once does not take every CPU for its own workers."""
    from imagetool import parallel_compress

    monkeypatch.setattr(pgzip, "threads", lambda: 4)

    def workers_of_streams(n: int) -> list[int]:
        writers = [parallel_compress._ZstdWriter(io.BytesIO(), None) for _ in range(n)]
        try:
            return [w.workers for w in writers]
        finally:
            for w in writers:
                w.close()

    assert workers_of_streams(2) == [4, 2]  # unannounced: each new stream divides what is left
    with parallel_compress.side_by_side(2):
        assert workers_of_streams(2) == [2, 2]
        with parallel_compress.side_by_side(2):  # another copy beside this one (copy --all)
            assert workers_of_streams(1) == [1]
    with parallel_compress.side_by_side(8):
        assert workers_of_streams(1) == [1]  # never fewer than one: the bytes are those of nbWorkers >= 1
    assert workers_of_streams(1) == [4]  # the announcements ended with their copies


def test_pgzip_stores_incompressible_segments_and_deflates_the_rest() -> None:
    """Random bytes (a compressed file inside a layer) go out as stored blocks, text around them is deflated."""
    rnd = random.Random(21)
    noise = rnd.randbytes(pgzip.BLOCK)
    text = b"".join(b"line %d of a layer\n" % rnd.randrange(1000) for _ in range(60000))[:pgzip.BLOCK]
    data = text + noise + text + noise[: pgzip.BLOCK // 2]  # ends in two whole random segments: a final stored block
    outs = {_gzip(data, max_pending=p, writes=w) for p, w in [(1, [1 << 20]), (3, [70000, 4096])]}
    assert len(outs) == 1
    out = outs.pop()
    assert zlib.decompress(out, 31) == data
    assert subprocess.run(["gzip", "-t"], input=out).returncode == 0
    # stored: the random bytes appear as they are, in runs of 65535 between 5-byte headers
    assert noise[70000:70000 + 60000] in out
    assert noise[270000:320000] in out  # in the last block, whose last segment ends the stream
    # and cost only their headers, while the text still shrinks
    stored_overhead = 3 * pgzip.BLOCK // 2 // 65535 * 5 + 100
    assert len(out) < len(noise) * 3 // 2 + stored_overhead + 2 * len(text) // 5


def test_pgzip_deflates_a_compressible_segment_between_random_ones() -> None:
    """A segment is stored only when every probe finds nothing to gain: text in the middle of one keeps it deflated."""
    rnd = random.Random(22)
    segment = 256 << 10
    text = b"".join(b"entry %d\n" % rnd.randrange(100) for _ in range(segment // 8))[:segment // 2]
    mixed = rnd.randbytes(segment // 4) + text + rnd.randbytes(segment // 4)
    data = rnd.randbytes(segment) + mixed + rnd.randbytes(2 * segment)
    out = _gzip(data, max_pending=2, writes=[1 << 20])
    assert zlib.decompress(out, 31) == data
    assert len(out) < len(data) - len(text) // 2
