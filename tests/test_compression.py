from __future__ import annotations

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
    with pytest.raises(LayoutError):
        while reader.read(65536):
            pass
