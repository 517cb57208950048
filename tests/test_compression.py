from __future__ import annotations

import errno
import io
import os

import pytest

from imagetool import compression
from imagetool.errors import LayoutError

DATA = os.urandom(1 << 20) + b"z" * (1 << 20)


@pytest.mark.parametrize("algorithm", ["gzip", "zstd"])
def test_round_trip_and_detection(algorithm: str) -> None:
    sink = io.BytesIO()
    w = compression.compressor(sink, algorithm, 5)
    for i in range(0, len(DATA), 300_000):
        w.write(DATA[i:i + 300_000])
    w.close()
    assert not sink.closed
    found, reader = compression.auto_decompressor(io.BytesIO(sink.getvalue()))
    assert found == algorithm
    assert b"".join(iter(lambda: reader.read(65536), b"")) == DATA


def test_gzip_output_is_readable_by_stdlib_gzip() -> None:
    import gzip

    sink = io.BytesIO()
    w = compression.compressor(sink, "gzip")
    w.write(DATA)
    w.close()
    assert gzip.decompress(sink.getvalue()) == DATA


def test_uncompressed_passes_through() -> None:
    found, reader = compression.auto_decompressor(io.BytesIO(b"plain tar bytes"))
    assert found is None and reader.read() == b"plain tar bytes"


@pytest.mark.parametrize("blob", [b"\x1f\x8b\x08\x00garbage" * 10, b"\x28\xb5\x2f\xfdgarbage" * 10])
def test_corrupt_streams_raise_layout_error(blob: bytes) -> None:
    _, reader = compression.auto_decompressor(io.BytesIO(blob))
    with pytest.raises(LayoutError) as info:
        while reader.read(65536):
            pass
    assert info.value.__cause__ is not None  # the decoder's own error, for --debug and callers


class _FailingDisk(io.RawIOBase):
    """A compressed stream whose disk fails with EIO after its first `good` bytes."""

    def __init__(self, data: bytes, good: int) -> None:
        super().__init__()
        self._data = data
        self._good = good
        self._pos = 0
        self.error = OSError(errno.EIO, os.strerror(errno.EIO))

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self._pos >= self._good:
            raise self.error
        end = self._good if n is None or n < 0 else min(self._good, self._pos + n)
        chunk, self._pos = self._data[self._pos:end], end
        return chunk


def _compressed(algorithm: str) -> bytes:
    if algorithm in ("gzip", "zstd"):
        sink = io.BytesIO()
        w = compression.compressor(sink, algorithm)
        w.write(DATA)
        w.close()
        return sink.getvalue()
    import bz2
    import lzma

    return lzma.compress(DATA) if algorithm == "xz" else bz2.compress(DATA)


@pytest.mark.parametrize("algorithm", ["gzip", "zstd", "xz", "bzip2"])
def test_a_failing_disk_under_a_decompressor_is_not_corruption(algorithm: str) -> None:
    data = _compressed(algorithm)
    disk = _FailingDisk(data, len(data) // 2)
    found, reader = compression.auto_decompressor(disk) if algorithm in ("gzip", "zstd") else \
        compression.sniff_archive(disk)
    assert found == algorithm
    if algorithm not in ("gzip", "zstd"):
        reader = compression.decompressor(reader, algorithm)
    with pytest.raises(OSError) as info:
        while reader.read(65536):
            pass
    assert info.value is disk.error or info.value.__cause__ is disk.error
    assert not isinstance(info.value, LayoutError) and "corrupt" not in str(info.value)
    assert info.value.errno == errno.EIO


@pytest.mark.parametrize("algorithm", ["gzip", "xz", "bzip2"])  # zstandard reads a cut frame as a short one
def test_truncated_streams_are_corrupt_and_keep_the_decoder_error(algorithm: str) -> None:
    data = _compressed(algorithm)
    reader = compression.decompressor(io.BytesIO(data[: len(data) // 2]), algorithm)  # type: ignore[arg-type]
    with pytest.raises(LayoutError, match=f"corrupt {algorithm} stream") as info:
        while reader.read(65536):
            pass
    assert info.value.__cause__ is not None and not isinstance(info.value.__cause__, LayoutError)
