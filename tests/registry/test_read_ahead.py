"""Chunked uploads read the next chunk while the current one is on the wire, into reused buffers."""

from __future__ import annotations

import io
import threading
import time

import pytest

from imagetool.registry.upload import _Buffers, read_ahead


class _Source(io.RawIOBase):
    def __init__(self, data: bytes, fail_at: int | None = None) -> None:
        self._data = io.BytesIO(data)
        self.reads: list[tuple[float, int]] = []
        self.fail_at = fail_at

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        pos = self._data.tell()
        if self.fail_at is not None and pos >= self.fail_at:
            raise OSError("source broke")
        self.reads.append((time.monotonic(), pos))
        return self._data.read(n)


def test_chunks_come_whole_and_in_order() -> None:
    data = bytes(range(256)) * 1000
    # each chunk is a view of a reused buffer, valid until the next one is asked for
    assert b"".join(bytes(c) for c in read_ahead(_Source(data), 4096)) == data
    assert [len(c) for c in read_ahead(_Source(data), 100_000)] == [100_000, 100_000, 56_000]
    assert list(read_ahead(_Source(b""), 10)) == []


def test_the_next_chunk_is_read_while_this_one_is_sent() -> None:
    src = _Source(b"x" * 30, None)
    sent_at = []
    for _chunk in read_ahead(src, 10):
        start = time.monotonic()
        time.sleep(0.2)  # the PATCH
        sent_at.append(start)
    # the read of bytes 10.. started while chunk 0 was still being "sent"
    # (it may even start a moment before the caller has the chunk in hand)
    first_read = next(t for t, pos in src.reads if pos == 0)
    second_read = next(t for t, pos in src.reads if pos == 10)
    assert first_read <= second_read < sent_at[0] + 0.2


def test_a_source_error_surfaces_in_order_and_no_thread_is_left() -> None:
    before = threading.active_count()
    got = []
    with pytest.raises(OSError, match="source broke"):
        for chunk in read_ahead(_Source(b"y" * 50, fail_at=20), 10):
            got.append(bytes(chunk))
    assert got == [b"y" * 10, b"y" * 10]
    assert threading.active_count() == before


def test_a_failed_send_stops_the_reader() -> None:
    before = threading.active_count()
    src = _Source(b"z" * 1000)

    def upload() -> None:
        for _chunk in read_ahead(src, 10):
            raise ConnectionResetError("PATCH failed")
    with pytest.raises(ConnectionResetError):
        upload()
    assert threading.active_count() == before
    assert len(src.reads) <= 2  # the chunk being sent and at most the one read ahead


def test_uploads_share_a_bounded_set_of_buffers() -> None:
    """More uploads than buffers for two each: each still gets one, reads ahead when one is free, and no more
    buffers are ever made than the limit (a push's memory does not grow with its number of layers)."""
    pool = _Buffers(10, 3)
    sources = [bytes([i]) * 95 for i in range(5)]
    results: dict[int, bytes] = {}
    errors: list[BaseException] = []

    def upload(i: int) -> None:
        try:
            parts = []
            for chunk in read_ahead(_Source(sources[i]), 10, pool):
                time.sleep(0.01)  # the PATCH
                parts.append(bytes(chunk))
            results[i] = b"".join(parts)
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert results == dict(enumerate(sources))
    assert pool._made <= 3
    assert len(pool._free) == pool._made  # every buffer given back


def test_a_failed_upload_gives_its_buffers_back() -> None:
    pool = _Buffers(10, 2)
    with pytest.raises(ConnectionResetError):
        for _chunk in read_ahead(_Source(b"z" * 1000), 10, pool):
            raise ConnectionResetError("PATCH failed")
    with pytest.raises(OSError, match="source broke"):
        for _chunk in read_ahead(_Source(b"y" * 50, fail_at=20), 10, pool):
            pass
    assert len(pool._free) == pool._made == 2


def test_the_session_opens_while_the_first_chunk_is_read() -> None:
    """`meanwhile` (the upload's POST) runs beside the first read: a source that answers only once the session is
    open would otherwise never start."""
    opened = threading.Event()

    class _Gated(_Source):
        def read(self, n: int = -1) -> bytes:
            if not opened.wait(5):
                raise TimeoutError("the first read waited for the session")
            return super().read(n)

    def open_session() -> None:
        time.sleep(0.1)  # the POST's round trip, while the reader already waits on the source
        opened.set()

    src = _Gated(b"w" * 25)
    assert b"".join(bytes(c) for c in read_ahead(src, 10, meanwhile=open_session)) == b"w" * 25


def test_a_failed_session_start_stops_the_reader() -> None:
    before = threading.active_count()
    src = _Source(b"v" * 1000)

    def refuse() -> None:
        raise ConnectionRefusedError("POST failed")
    with pytest.raises(ConnectionRefusedError):
        list(read_ahead(src, 10, meanwhile=refuse))
    assert threading.active_count() == before
    assert len(src.reads) <= 1
