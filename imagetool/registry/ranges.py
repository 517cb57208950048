"""Byte ranges of a blob: one multi-range GET (multipart/byteranges) for many ranges, falling back to
one range a request, then to the whole blob, as the registry (or its storage redirect) allows.

parts() yields (start, end, reader) for each span of the blob the server sent; the caller takes
what it needs from each and must read (or drain) a reader before asking for the next. Which
requested ranges a part covers is for the caller to work out: servers may merge, reorder or
ignore ranges (a 200 is the whole blob), and every case is handled the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from imagetool.errors import RegistryError

if TYPE_CHECKING:
    from imagetool.digest import Digest
    from imagetool.registry.client import Client
    from imagetool.registry.http import Response

#: ranges asked for in one request (the Range header stays a few KiB)
MAX_RANGES = 128
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class _Part:
    """Exactly `length` bytes of a body, read through the response's buffer."""

    def __init__(self, body: _Buffered, length: int) -> None:
        self._body = body
        self.left = length

    def read(self, n: int = -1) -> bytes:
        if not self.left:
            return b""
        data = self._body.read(self.left if n is None or n < 0 else min(n, self.left))
        if not data:
            raise RegistryError("blob ranges: the response ends inside a part")
        self.left -= len(data)
        return data

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


class _Buffered:
    def __init__(self, resp: Response) -> None:
        self._raw = resp.raw
        self._buf = b""

    def read(self, n: int) -> bytes:
        if self._buf:
            data, self._buf = self._buf[:n], self._buf[n:]
            return data
        return self._raw.read(n)

    def readline(self, limit: int = 1024) -> bytes:
        while b"\n" not in self._buf and len(self._buf) < limit:
            more = self._raw.read(4096)
            if not more:
                break
            self._buf += more
        cut = self._buf.find(b"\n")
        if cut < 0:
            raise RegistryError("blob ranges: malformed multipart response")
        line, self._buf = self._buf[:cut + 1], self._buf[cut + 1:]
        return line


def _span(header: str | None, size: int) -> tuple[int, int]:
    m = _CONTENT_RANGE.fullmatch((header or "").strip())
    if m is None:
        raise RegistryError(f"blob ranges: bad Content-Range {str(header)[:60]!r}")
    start, last = int(m.group(1)), int(m.group(2))
    if start > last or last >= size:
        raise RegistryError(f"blob ranges: Content-Range {header!r} outside the blob")
    return start, last + 1


def _multipart(resp: Response, boundary: str, size: int) -> Iterator[tuple[int, int, _Part]]:
    body = _Buffered(resp)
    delimiter = b"--" + boundary.encode()
    while True:
        line = body.readline()
        if not line.strip():
            continue
        if line.strip() == delimiter + b"--":
            return
        if line.strip() != delimiter:
            raise RegistryError("blob ranges: malformed multipart response")
        content_range = None
        while (header := body.readline()).strip():
            key, _, value = header.decode("latin-1").partition(":")
            if key.strip().lower() == "content-range":
                content_range = value.strip()
        start, end = _span(content_range, size)
        part = _Part(body, end - start)
        yield start, end, part
        part.drain()


def parts(client: Client, repo: str, digest: Digest, size: int, ranges: list[tuple[int, int]],
          single: bool = False) -> Iterator[tuple[int, int, _Part]]:
    """The server's answer to a request for `ranges` ([start, end) pairs, sorted, disjoint)."""
    from imagetool.registry.client import pull_scope

    header = "bytes=" + ",".join(f"{a}-{b - 1}" for a, b in ranges)
    resp = client.send("GET", f"/v2/{repo}/blobs/{digest}", scopes={pull_scope(repo)}, headers={"Range": header},
                       ok=(200, 206), stream=True, what=f"reading ranges of blob {digest.short} in {repo}")
    try:
        if resp.status_code == 200:  # no ranges here: the whole blob, from the start
            whole = _Part(_Buffered(resp), size)
            yield 0, size, whole
            whole.drain()
            return
        ctype = resp.headers.get("Content-Type", "") or ""
        if ctype.lower().startswith("multipart/byteranges"):
            m = re.search(r'boundary="?([^";]+)"?', ctype)
            if m is None:
                raise RegistryError("blob ranges: multipart response without a boundary")
            yield from _multipart(resp, m.group(1), size)
            return
        start, end = _span(resp.headers.get("Content-Range"), size)
        part = _Part(_Buffered(resp), end - start)
        yield start, end, part
        part.drain()
    finally:
        resp.close()
