"""Byte strings an iterator yields, read as a stream: how a tar rebuilt piece by piece (from a zstd:chunked
TOC or a containers/storage tar-split) reaches the unpacker and its digesting reader without being joined."""

from __future__ import annotations

from collections.abc import Iterator


class IteratorStream:
    """A readable stream over `parts`; closing it closes the iterator (a generator's finally runs)."""

    def __init__(self, parts: Iterator[bytes]) -> None:
        self._parts = parts
        self._buf = b""

    def read(self, n: int | None = -1) -> bytes:
        try:
            while not self._buf:
                self._buf = next(self._parts)
        except StopIteration:
            return b""
        if n is None or n < 0 or n >= len(self._buf):
            data, self._buf = self._buf, b""
        else:
            data, self._buf = self._buf[:n], self._buf[n:]
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        close = getattr(self._parts, "close", None)
        if close:
            close()
