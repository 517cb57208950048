"""Reading an upload's source again from an offset, so that a streamed upload cut off mid-way resumes.

A blob goes up in one streamed PATCH; when the connection breaks, the registry holds some prefix of what
was sent, and the rest must be sent again. The bytes already sent are not kept in memory: they are read
again from where they came from, which works for

  - a regular file (an OCI layout's blob, a spooled temp file): read with pread, the stream's own position
    untouched;
  - a registry's blob body (BlobReader): a new GET with a Range header;
  - bytes in memory (io.BytesIO);

and for any of these behind the copy's digest check (VerifyingReader) and the pass-through wrappers that name
it (digest.verifier_behind). Other streams (a compressor's pipe) cannot be read again: rereader() says None.
"""

from __future__ import annotations

import io
import os
import stat
from typing import Callable

from imagetool.digest import Readable, verifier_behind

#: how to read the upload's bytes from an offset (counted from the upload's first byte) to the end
Rereader = Callable[[int], Readable]


def rereader(stream: Readable) -> Rereader | None:
    """How to read `stream` again from an offset, or None when it cannot be.

    Asked before the upload reads anything: offset 0 is the stream's position now.
    """
    verifier = verifier_behind(stream)
    if verifier is not None:
        source, consumed = verifier.source, verifier.size  # a wrapper may have peeked: the verifier counts it
    else:
        source, consumed = stream, 0
    reopen = getattr(source, "reopen_at", None)
    if callable(reopen):
        # a registry blob body: offsets are the blob's, and the blob starts the upload
        start = getattr(source, "offset", 0) - consumed
        return lambda offset: reopen(start + offset)  # type: ignore[no-any-return]
    if isinstance(source, io.BytesIO):
        start = source.tell() - consumed
        view = source.getbuffer()
        return lambda offset: io.BytesIO(view[start + offset:])
    fd = _regular_file(source)
    if fd is not None:
        start = source.tell() - consumed  # type: ignore[attr-defined]
        return lambda offset: _PReader(fd, start + offset)
    return None


def _regular_file(stream: object) -> int | None:
    """The descriptor of a seekable regular file read sequentially from the start of the blob."""
    raw = stream.raw if isinstance(stream, (io.BufferedReader, io.BufferedRandom)) else stream  # (a spooled temp file)
    if not isinstance(raw, io.FileIO):
        return None  # a tar member's reader is a BufferedReader too, over the archive's file
    try:
        fd = raw.fileno()
        return fd if stat.S_ISREG(os.fstat(fd).st_mode) and raw.seekable() else None
    except (OSError, ValueError):
        return None


class _PReader:
    """A file's bytes from `offset`, read with pread: the file's own position (another reader's) stays."""

    def __init__(self, fd: int, offset: int) -> None:
        self._fd = fd
        self._offset = offset

    def read(self, n: int = -1) -> bytes:
        data = os.pread(self._fd, n if n is not None and n >= 0 else 1 << 20, self._offset)
        self._offset += len(data)
        return data

    def readinto(self, buf: memoryview) -> int:
        n = os.preadv(self._fd, [buf], self._offset)
        self._offset += n
        return n

    def close(self) -> None:
        pass
