"""BlobReader: a blob's body that survives broken connections by asking again with a Range header."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from imagetool.digest import Digest
from imagetool.errors import RegistryError
from imagetool.registry.errors import RegistryUnreachable
from imagetool.registry.http import Response, short_reason

if TYPE_CHECKING:
    from imagetool.registry.client import Client


class BlobReader:
    """A blob's body; on a broken connection it asks again from the current offset (Range)."""

    def __init__(self, client: Client, repo: str, digest: Digest, size: int | None, offset: int = 0) -> None:
        self.client = client
        self.repo = repo
        self.digest = digest
        self.size = size if size is not None and size >= 0 else None
        self.offset = offset
        self.resumes = 0
        self._resp: Response | None = client.open_blob_response(repo, digest, offset)
        if offset:
            self._check_start(self._resp)

    def reopen_at(self, offset: int) -> BlobReader:
        """The blob again from `offset`, on a request of its own (an upload cut off re-sends from there)."""
        return BlobReader(self.client, self.repo, self.digest, self.size, offset)

    def _check_start(self, resp: Response) -> None:
        """Position a response asked for at self.offset there: skip what a server ignoring Range sends
        first, refuse a range that starts elsewhere."""
        if resp.status_code == 200 and self.offset:
            skip = self.offset  # the server ignored Range: throw away what we already have
            while skip:
                chunk = resp.raw.read(min(skip, 1 << 20))
                if not chunk:
                    resp.close()
                    raise RegistryUnreachable(f"reading blob {self.digest.short}: short body on retry")
                skip -= len(chunk)
        elif resp.status_code == 206:
            start = resp.headers.get("Content-Range", "").removeprefix("bytes ").split("-")[0]
            if start.strip() != str(self.offset):
                resp.close()
                raise RegistryError(f"reading blob {self.digest.short}: resumed at {start}, wanted {self.offset}")

    def _reopen(self, err: BaseException) -> None:
        if self._resp is not None:
            self._resp.close()
        self._resp = None
        if self.resumes >= max(self.client.retry.times, 1) * 2:
            raise RegistryUnreachable(f"reading blob {self.digest.short}: connection lost at byte "
                                      f"{self.offset}: {short_reason(err)}") from err
        self.resumes += 1
        time.sleep(self.client.retry.wait_for(self.resumes - 1, err))
        resp = self.client.open_blob_response(self.repo, self.digest, self.offset)
        self._check_start(resp)
        self._resp = resp

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = 1 << 20
        while True:
            if self._resp is None:
                return b""
            try:
                data = self._resp.raw.read(n)
            except Exception as err:  # noqa: BLE001 - socket/transport errors: resume below
                if not _is_connection_error(err):
                    raise
                self._reopen(err)
                continue
            if not data and self.size is not None and self.offset < self.size:
                self._reopen(ConnectionError("connection closed early"))
                continue
            self.offset += len(data)
            return data

    def readinto(self, buf: memoryview) -> int:
        """read() into the caller's buffer, resuming the same way."""
        while True:
            if self._resp is None:
                return 0
            try:
                readinto = getattr(self._resp.raw, "readinto", None)
                if readinto is not None:
                    n = int(readinto(buf) or 0)
                else:
                    data = self._resp.raw.read(len(buf))
                    n = len(data)
                    buf[:n] = data
            except Exception as err:  # noqa: BLE001 - socket/transport errors: resume below
                if not _is_connection_error(err):
                    raise
                self._reopen(err)
                continue
            if not n and len(buf) and self.size is not None and self.offset < self.size:
                self._reopen(ConnectionError("connection closed early"))
                continue
            self.offset += n
            return n

    def readable(self) -> bool:
        return True

    def __enter__(self) -> BlobReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._resp is not None:
            self._resp.close()
            self._resp = None


def _is_connection_error(err: BaseException) -> bool:
    """Socket and transport errors (http.TransportError is an OSError), not answers from the registry."""
    return isinstance(err, OSError) and not isinstance(err, RegistryError)


