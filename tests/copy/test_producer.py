"""ProducerReader: a producer thread's output read as a stream, its failure surfacing in the reader."""

from __future__ import annotations

import random
import threading
from typing import BinaryIO

import pytest

from imagetool.copy.blob import ProducerReader


def test_every_byte_arrives_in_order_whatever_the_read_sizes() -> None:
    rng = random.Random(4)
    pieces = [rng.randbytes(rng.choice([0, 1, 700, 65536, 3 << 20])) for _ in range(40)]

    def produce(sink: BinaryIO) -> None:
        for i, piece in enumerate(pieces):
            sink.write(bytearray(piece) if i % 3 == 0 else memoryview(piece) if i % 3 == 1 else piece)

    reader = ProducerReader(produce)
    got = bytearray()
    sizes = [1, 4096, 1 << 20, 5 << 20]
    while True:
        want = sizes[len(got) % 4]
        chunk = reader.read(want)
        if not chunk:
            break
        assert len(chunk) <= want
        got += chunk
    reader.close()
    assert bytes(got) == b"".join(pieces)


def test_a_bytearray_the_producer_reuses_is_not_read_changed() -> None:
    def produce(sink: BinaryIO) -> None:
        buf = bytearray(b"a" * 10)
        sink.write(buf)
        buf[:] = b"b" * 10  # compressors reuse their output buffers
        sink.write(buf)

    reader = ProducerReader(produce)
    assert reader.read(100) + reader.read(100) == b"a" * 10 + b"b" * 10
    assert reader.read(100) == b""


def test_a_failing_producer_fails_the_reader_after_what_it_wrote() -> None:
    def produce(sink: BinaryIO) -> None:
        sink.write(b"partial")
        raise ValueError("corrupt input")

    reader = ProducerReader(produce)
    assert reader.read(100) == b"partial"
    with pytest.raises(ValueError, match="corrupt input"):
        reader.read(100)
    reader.close()


def test_closing_the_reader_ends_a_producer_blocked_on_a_full_stream() -> None:
    started = threading.Event()

    def produce(sink: BinaryIO) -> None:
        started.set()
        while True:
            sink.write(b"x" * 65536)

    reader = ProducerReader(produce)
    started.wait(5)
    assert reader.read(10) == b"x" * 10
    reader.close()  # joins the producer: a write into the abandoned stream fails
    assert isinstance(reader._error, BrokenPipeError)
