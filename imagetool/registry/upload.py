"""BlobUploader: push one blob: a monolithic PUT when small; when large, one streamed PATCH (then the closing
PUT ?digest=) if the source can be read again from an offset, else PATCH chunks, the last one sent with the
closing PUT when the size is known.

The registry pays for every request on top of the bytes (Distribution stores and fsyncs the upload's hash
state, and builds its URL routes anew, per request: 4 MiB chunks cost it a third more CPU than the same blob
in one PATCH), so a large blob goes in one request, read from its source in small pieces. A streamed PATCH
cut off goes on from the offset the registry reports, the bytes since then read again from the source
(registry.rereads). A chunk is held until the registry acknowledged it, so a chunk that failed on a
temporary error (connection reset, 5xx, 429) is sent again from the offset the registry reports. What cannot
be resumed cancels the session: no partial blob is ever published under its digest (the registry checks the
digest at the final PUT).
"""

from __future__ import annotations

import hashlib
import threading
import urllib.parse
from typing import Callable, Generator, Iterator

from imagetool.digest import Digest, Readable, close_quietly, read_full
from imagetool.errors import DigestMismatch, ImagetoolError, RegistryError, SizeMismatch
from imagetool.memory import tune_for_streaming
from imagetool.registry.client import Client, push_scope
from imagetool.registry.errors import BlobUploadInvalid, UploadUnknown
from imagetool.registry.rereads import Rereader, rereader
from imagetool.registry.retry import is_temporary

#: blobs up to this size (when the size is known) go in one PUT
MONOLITHIC_MAX = 1 << 20
#: PATCH chunk size: bounds memory per upload, and what a retry re-sends; a blob of more than one chunk
#: streams in one PATCH when its source can be read again
CHUNK_SIZE = 4 << 20
#: what a streamed PATCH reads from its source at a time (the socket takes it while the next is read)
PIECE_SIZE = 512 << 10


def fill(stream: Readable, buf: memoryview) -> int:
    """Read into `buf` until it is full or the stream ends; the number of bytes read.

    Straight into the buffer where the stream can (readinto), so a chunk costs no allocation and no join.
    """
    readinto = getattr(stream, "readinto", None)
    got = 0
    want = len(buf)
    while got < want:
        if readinto is not None:
            try:
                n = readinto(buf[got:]) or 0
            except NotImplementedError:  # io.RawIOBase's own, in a reader that defines read() only
                readinto = None
                continue
        else:
            data = stream.read(want - got)
            n = len(data)
            buf[got:got + n] = data
        if not n:
            break
        got += n
    return got


class _Buffers:
    """Chunk buffers shared by every upload of the process, kept for reuse, at most `limit` of them.

    Each upload holds one for the chunk on the wire (waiting for it if need be), and borrows a second to
    read the next chunk ahead only when one is free. So the memory of the uploads is bounded by the
    limit, not by how many layers a push has (a 50-layer push runs six uploads where a 5-layer one ran
    five), and a reused buffer costs no page faults.
    """

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        self._free: list[bytearray] = []
        self._made = 0
        self._cond = threading.Condition()

    def take(self) -> bytearray:
        """A buffer, waiting for one to be given back when all `limit` are out."""
        with self._cond:
            while (buf := self._get()) is None:
                self._cond.wait()
            return buf

    def lend(self) -> bytearray | None:
        """A buffer if one is free (or may still be made), else None at once."""
        with self._cond:
            return self._get()

    def _get(self) -> bytearray | None:
        if self._free:
            return self._free.pop()
        if self._made < self.limit:
            self._made += 1
            return bytearray(self.size)
        return None

    def give(self, buf: bytearray) -> None:
        with self._cond:
            self._free.append(buf)
            self._cond.notify()


#: two per upload for the first four uploads, one each for more of them: 32 MiB at most
_BUFFERS = _Buffers(CHUNK_SIZE, 8)
#: the pieces of streamed uploads: two per upload for the first eight, one each for more: 8 MiB at most
_PIECES = _Buffers(PIECE_SIZE, 16)


class _SourceFailed(Exception):
    """The source of a streamed body failed while its request was on the wire: its error, not the registry's."""

    def __init__(self, err: BaseException) -> None:
        super().__init__(str(err))
        self.err = err


class _Taken:
    """What a streamed upload has taken from its stream: bytes, and whether the stream has ended."""

    def __init__(self, first: memoryview | None) -> None:
        self.first = first  # read before the request (while the session opened), not yet counted
        self.bytes = 0
        self.ended = False


def read_ahead(stream: Readable, size: int, buffers: _Buffers | None = None,
               meanwhile: Callable[[], None] | None = None) -> Generator[memoryview, None, None]:
    """Chunks of `size` bytes; the next one is read (on a thread of its own) while the caller sends this one.

    The source keeps streaming while a PATCH is on the wire, instead of stalling once per chunk
    for a round trip. Each chunk is a view of a reused buffer, valid until the next one is asked for;
    the read ahead needs a second buffer, and without a free one the next chunk is read after this one
    is sent. `meanwhile` runs while the first chunk is read (the upload session opens then, not before the
    source starts streaming).
    """
    from concurrent.futures import ThreadPoolExecutor

    pool = buffers or _Buffers(size, 2)
    assert size <= pool.size
    current = pool.take()
    spare: bytearray | None = None
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead") as reader:
            first = reader.submit(fill, stream, memoryview(current)[:size])
            if meanwhile is not None:
                meanwhile()  # failing, it leaves the first read to finish: the executor waits for it
            n = first.result()
            while n:
                spare = pool.lend()
                pending = reader.submit(fill, stream, memoryview(spare)[:size]) if spare is not None else None
                try:
                    yield memoryview(current)[:n]
                except BaseException:
                    if pending is not None:
                        pending.cancel()  # a failed upload: the reader finishes at most the chunk it is on
                    raise
                if spare is None or pending is None:
                    n = fill(stream, memoryview(current)[:size])
                    continue
                n = pending.result()
                pool.give(current)  # lent back after each chunk: another upload may need one to start
                current, spare = spare, None
    finally:  # the reader thread has stopped (the executor waited for it): the buffers are free again
        pool.give(current)
        if spare is not None:
            pool.give(spare)


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
            if size is None or size > CHUNK_SIZE:
                reread = rereader(stream)
                if reread is not None:
                    return self._stream(stream, digest, size, reread, hasher)
            offset = 0
            last: bytes | None = None  # the chunk that ends a blob of known size: it goes with the PUT
            for chunk in read_ahead(stream, CHUNK_SIZE, _BUFFERS, meanwhile=self._start):
                if hasher is not None:
                    hasher.update(chunk)
                if last is not None:  # the stream goes on past the size it was given: the check below fails
                    self._patch(last, offset)
                    offset += len(last)
                    last = None
                if digest is not None and size is not None and offset + len(chunk) == size:
                    last = bytes(chunk)  # held until the stream ends (and its reader has checked the digest);
                    # a copy: the chunk's buffer goes back to the other uploads when the next one is asked for
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

    def _stream(self, stream: Readable, digest: Digest | None, size: int | None, reread: Rereader,
                hasher: hashlib._Hash | None) -> tuple[Digest, int]:
        """The blob in one PATCH, piece by piece from `stream` (with a length when `size` is known, else in
        chunked transfer encoding), then the closing PUT.

        A PATCH that failed on a temporary error is followed by another from the offset the registry holds
        (or from the start, in a new session, when the registry gave the old one up): the bytes it lost are
        read again from the source (`reread`), then the stream goes on.
        """
        pieces = read_ahead(stream, PIECE_SIZE, _PIECES, meanwhile=self._start)
        try:
            taken = _Taken(next(pieces, None))  # the session opens while the first piece is read
            stored = 0
            attempt = 0
            while True:  # until the registry acknowledges a PATCH that carried the stream to its end
                headers = {"Content-Type": "application/octet-stream"}
                if size is not None:
                    headers["Content-Length"] = str(size - stored)
                    headers["Content-Range"] = f"{stored}-{size - 1}"
                body = self._body(pieces, taken, reread, stored, digest, size, hasher)
                try:
                    resp = self.client.send("PATCH", str(self.location), scopes=self.scopes, ok=(202,), data=body,
                                            retry=False, headers=headers,
                                            what=f"uploading to {self.client.domain}/{self.repo}")
                    resp.close()
                    self.patches += 1
                    if resp.headers.get("Location"):
                        self.location = self._absolute(resp.headers["Location"])
                    if not taken.ended:  # the registry answered before the whole body was sent
                        raise RegistryError(f"upload to {self.repo}: registry answered before the blob ended")
                    break
                except _SourceFailed as failed:
                    raise failed.err from None
                except ImagetoolError as err:
                    if not is_temporary(err) or attempt >= self.client.retry.times:
                        raise
                    self.client.retry.pause(attempt, err)
                    attempt += 1
                    stored = self._status_or_anew()
                    if stored > taken.bytes:
                        raise RegistryError(f"upload to {self.repo} lost its place (registry at byte {stored}, "
                                            f"{taken.bytes} sent)").citing_cause() from err
                finally:
                    body.close()
        finally:
            pieces.close()  # the reader thread stops, the pieces go back to the pool
        got = digest if digest is not None else Digest("sha256", hasher.hexdigest())  # type: ignore[union-attr]
        self._finish(got, b"")
        return got, taken.bytes

    @staticmethod
    def _body(pieces: Iterator[memoryview], taken: _Taken, reread: Rereader, stored: int, digest: Digest | None,
              size: int | None, hasher: hashlib._Hash | None) -> Generator[bytes | memoryview, None, None]:
        """A PATCH body from `stored` on: what was taken since, read again from the source, then the stream.

        Bytes are counted as taken before they are handed to the socket: a send that fails part way leaves
        them to be read again. An error of the source comes out as _SourceFailed (the request is abandoned).
        """
        try:
            if stored < taken.bytes:
                again = reread(stored)
                try:
                    left = taken.bytes - stored
                    while left:
                        data = again.read(min(left, PIECE_SIZE))
                        if not data:
                            raise RegistryError(f"the upload's source, read again, ended at byte "
                                                f"{taken.bytes - left} (it had {taken.bytes})")
                        left -= len(data)
                        yield data
                finally:
                    close_quietly(again)
            while True:
                piece: memoryview | None
                if taken.first is not None:
                    piece, taken.first = taken.first, None
                else:
                    piece = next(pieces, None)
                if piece is None:
                    break
                if size is not None and taken.bytes + len(piece) > size:
                    raise SizeMismatch(digest or "the upload", size, taken.bytes + len(piece))
                if hasher is not None:
                    hasher.update(piece)
                taken.bytes += len(piece)
                yield piece
            if size is not None and taken.bytes != size:
                raise SizeMismatch(digest or "the upload", size, taken.bytes)
            taken.ended = True
        except Exception as err:  # noqa: BLE001 - handed to the uploader through the HTTP layer
            raise _SourceFailed(err) from err

    def _patch(self, chunk: bytes | memoryview, offset: int) -> None:
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

    def _status_or_anew(self) -> int:
        """How many bytes the registry holds after a PATCH that failed; 0 in a new session when it gave the
        old one up (Distribution cancels an upload whose size is not the one its last answer named, as after
        a body cut off part way: the blob goes again from its start)."""
        try:
            return self._status()
        except (UploadUnknown, BlobUploadInvalid):
            self.location = None
            self._start()
            return 0

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
