"""BlobUploader: push one blob (monolithic PUT when small; PATCH chunks when large, the last one sent with the
closing PUT ?digest= when the size is known).

Each chunk is held until the registry acknowledged it, so a chunk that failed on a
temporary error (connection reset, 5xx, 429) is sent again from the offset the registry
reports for the upload session. What cannot be resumed cancels the session: no partial
blob is ever published under its digest (the registry checks the digest at the final PUT).
"""

from __future__ import annotations

import hashlib
import urllib.parse
from typing import Callable, Iterator

from imagetool.digest import Digest, Readable
from imagetool.errors import DigestMismatch, ImagetoolError, RegistryError, SizeMismatch
from imagetool.memory import tune_for_streaming
from imagetool.registry.client import Client, push_scope
from imagetool.registry.retry import is_temporary

#: blobs up to this size (when the size is known) go in one PUT
MONOLITHIC_MAX = 1 << 20
#: PATCH chunk size: bounds memory per upload, and what a retry re-sends
CHUNK_SIZE = 4 << 20


def read_full(stream: Readable, n: int) -> bytes:
    parts = []
    want = n
    while want > 0:
        data = stream.read(want)
        if not data:
            break
        parts.append(data)
        want -= len(data)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def read_ahead(stream: Readable, size: int, meanwhile: Callable[[], None] | None = None) -> Iterator[bytes]:
    """Chunks of `size` bytes; the next one is read (on a thread of its own) while the caller sends this one.

    The source keeps streaming while a PATCH is on the wire, instead of stalling once per chunk
    for a round trip; at most two chunks are held. `meanwhile` runs while the first chunk is read
    (the upload session opens then, not before the source starts streaming).
    """
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead") as reader:
        pending = reader.submit(read_full, stream, size)
        try:
            if meanwhile is not None:
                meanwhile()
            while chunk := pending.result():
                pending = reader.submit(read_full, stream, size)
                yield chunk
        finally:
            pending.cancel()  # a failed upload: the reader finishes at most the chunk it is on


class BlobUploader:
    """One upload session in `repo`; `upload(stream)` returns the digest and size stored."""

    def __init__(self, client: Client, repo: str, location: str | None = None) -> None:
        """`location`: an upload session already opened in `repo` (Client.open_upload) to use."""
        tune_for_streaming()
        self.client = client
        self.repo = repo
        self.scopes = {push_scope(repo)}
        self.location: str | None = location
        self.patches = 0

    def _absolute(self, location: str) -> str:
        return urllib.parse.urljoin(self.client.url("/v2/"), location)

    def _start(self) -> None:
        if self.location is not None:
            return
        resp = self.client.send("POST", f"/v2/{self.repo}/blobs/uploads/", scopes=self.scopes, ok=(202,),
                                what=f"starting an upload to {self.client.domain}/{self.repo}")
        resp.close()
        location = resp.headers.get("Location")
        if not location:
            raise RegistryError("registry started an upload without a Location")
        self.location = self._absolute(location)

    def upload(self, stream: Readable, digest: Digest | None, size: int | None) -> tuple[Digest, int]:
        try:
            if digest is not None and size is not None and 0 <= size <= MONOLITHIC_MAX:
                data = read_full(stream, size + 1)
                if len(data) != size:
                    raise SizeMismatch(digest, size, len(data))
                got = Digest(digest.algorithm, hashlib.new(digest.algorithm, data).hexdigest())
                if got != digest:
                    raise DigestMismatch(digest, got)
                self._start()  # (no session for bytes that are not the blob)
                self._finish(digest, data)
                return digest, size
            # with the digest known, the registry checks it at the final PUT (DIGEST_INVALID, nothing
            # published), and the copy pipeline's reader has checked the source: hashing here too
            # would be a third pass over the same bytes
            hasher = hashlib.sha256() if digest is None else None
            offset = 0
            last: bytes | None = None  # the chunk that ends a blob of known size: it goes with the PUT
            for chunk in read_ahead(stream, CHUNK_SIZE, meanwhile=self._start):
                if hasher is not None:
                    hasher.update(chunk)
                if last is not None:  # the stream goes on past the size it was given: the check below fails
                    self._patch(last, offset)
                    offset += len(last)
                    last = None
                if digest is not None and size is not None and offset + len(chunk) == size:
                    last = chunk  # held until the stream ends (and its reader has checked the digest)
                    continue
                self._patch(chunk, offset)
                offset += len(chunk)
            got = digest if digest is not None else Digest("sha256", hasher.hexdigest())  # type: ignore[union-attr]
            if last is not None:
                self._finish_with(got, last, offset)
                return got, offset + len(last)
            if size is not None and size >= 0 and offset != size:
                raise SizeMismatch(got, size, offset)
            self._finish(got, b"")
            return got, offset
        except BaseException:
            self.cancel()
            raise

    def _patch(self, chunk: bytes, offset: int) -> None:
        sent = 0
        attempt = 0
        while True:
            body = chunk[sent:] if sent else chunk
            try:
                resp = self.client.send(
                    "PATCH", str(self.location), scopes=self.scopes, ok=(202,), data=body, retry=False,
                    headers={"Content-Type": "application/octet-stream",
                             "Content-Range": f"{offset + sent}-{offset + len(chunk) - 1}"},
                    what=f"uploading to {self.client.domain}/{self.repo}")
                resp.close()
                self.patches += 1
                if resp.headers.get("Location"):
                    self.location = self._absolute(resp.headers["Location"])
                return
            except ImagetoolError as err:
                if not is_temporary(err) or attempt >= self.client.retry.times:
                    raise
                self.client.retry.pause(attempt, err)
                attempt += 1
                done = self._status() - offset
                if done < 0 or done > len(chunk):
                    raise RegistryError(f"upload to {self.repo} lost its place (registry at byte "
                                        f"{done + offset}, chunk at {offset})").citing_cause() from err
                if done == len(chunk):
                    return
                sent = done

    def _status(self) -> int:
        """How many bytes the registry holds for this session (GET on the upload URL)."""
        resp = self.client.send("GET", str(self.location), scopes=self.scopes, ok=(204, 200),
                                what="checking upload progress")
        resp.close()
        if resp.headers.get("Location"):
            self.location = self._absolute(resp.headers["Location"])
        rng = resp.headers.get("Range", "")
        if "-" not in rng:
            return 0
        end = int(rng.split("-")[-1])
        return end + 1 if end > 0 else 0

    def _finish_with(self, digest: Digest, chunk: bytes, offset: int) -> None:
        """The closing PUT carrying the blob's last chunk (at `offset`): one request less than PATCH then PUT.

        Sent once; after a temporary failure the registry is asked how much of the chunk it holds, the
        rest goes in a PATCH (with its own retries), and the session is closed with an empty PUT.
        """
        location = str(self.location)
        sep = "&" if "?" in location else "?"
        url = f"{location}{sep}digest={urllib.parse.quote(str(digest))}"
        try:
            resp = self.client.send("PUT", url, scopes=self.scopes, ok=(201, 204), data=chunk, retry=False,
                                    headers={"Content-Type": "application/octet-stream",
                                             "Content-Range": f"{offset}-{offset + len(chunk) - 1}"},
                                    what=f"completing upload of {digest.short} to {self.client.domain}/{self.repo}")
            resp.close()
        except ImagetoolError as err:
            if self._stored(digest):
                self.location = None
                return
            if not is_temporary(err) or self.client.retry.times < 1:
                raise
            self.client.retry.pause(0, err)
            done = self._status() - offset
            if done < 0 or done > len(chunk):
                raise RegistryError(f"upload to {self.repo} lost its place (registry at byte {done + offset}, "
                                    f"last chunk at {offset})").citing_cause() from err
            if done < len(chunk):
                self._patch(chunk[done:], offset + done)
            self._finish(digest, b"")
            return
        self.location = None

    def _stored(self, digest: Digest) -> bool:
        """Whether the registry holds the blob (a completed upload whose answer got lost)."""
        try:
            return self.client.head_blob(self.repo, digest) is not None
        except ImagetoolError:
            return False

    def _finish(self, digest: Digest, data: bytes) -> None:
        location = str(self.location)
        sep = "&" if "?" in location else "?"
        url = f"{location}{sep}digest={urllib.parse.quote(str(digest))}"
        try:
            resp = self.client.send("PUT", url, scopes=self.scopes, ok=(201, 204), data=data,
                                    headers={"Content-Type": "application/octet-stream"},
                                    what=f"completing upload of {digest.short} to {self.client.domain}/{self.repo}")
            resp.close()
        except ImagetoolError:
            # the registry may have completed the upload and only the answer got lost
            if self.client.head_blob(self.repo, digest) is None:
                raise
        self.location = None

    def cancel(self) -> None:
        if self.location is None:
            return
        location, self.location = self.location, None
        try:
            self.client.send("DELETE", location, scopes=self.scopes, ok=(200, 204, 404), retry=False,
                             what="cancelling upload").close()
        except (ImagetoolError, OSError):
            pass
