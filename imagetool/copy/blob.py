"""Copy one blob: reuse it if the destination has it, else stream it through a chain of readers.

The chain, one concern per link:  source -> verify(digest, size) -> progress
    [-> decompress -> hash(diff_id, when neither the config nor the destination names it)
     [-> compress (own thread)]] -> destination.put_blob
"""

from __future__ import annotations

import os
import threading
from collections import deque
from dataclasses import dataclass
from typing import BinaryIO, Callable

from imagetool import media
from imagetool.copy.progress import Progress
from imagetool.descriptor import Descriptor
from imagetool.digest import CHUNK, Digest, DigestingReader, Readable, VerifyingReader
from imagetool.errors import DigestMismatch
from imagetool.transports.base import ImageDestination, ImageSource

PRESERVE = "preserve"


@dataclass(frozen=True)
class BlobPlan:
    """What to do with one layer: keep its bytes, or rewrite it to `compression` (None = uncompressed)."""

    action: str = PRESERVE          # PRESERVE or "rewrite"
    compression: str | None = None
    level: int | None = None
    expected_diff_id: Digest | None = None

    @property
    def rewrites(self) -> bool:
        return self.action != PRESERVE


KEEP = BlobPlan()

#: rewrites are CPU-bound and each holds compressor buffers (~20 MiB for gzip): more of them
#: at once than there are CPUs only adds memory, so they queue here while plain copies stream on
_REWRITE_SLOTS = threading.BoundedSemaphore(max(1, len(os.sched_getaffinity(0))))


@dataclass(frozen=True)
class CopiedBlob:
    """A blob at the destination: its descriptor there, its diff ID when known, whether it was already there."""

    desc: Descriptor
    diff_id: Digest | None = None
    reused: bool = False


class _InFlight:
    """Blobs being written right now, per destination blob namespace (`dst.blob_scope`).

    The platforms of an index (and the images of a sync) often share layers and are copied at
    once: the second copy of a blob waits for the first instead of finding it absent and
    uploading it again beside it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[tuple[object, Digest], threading.Event] = {}

    def claim(self, scope: object, digest: Digest) -> threading.Event | None:
        """None: the caller writes the blob (and must `release` it); else an event set when the writer ends."""
        with self._lock:
            running = self._running.get((scope, digest))
            if running is None:
                self._running[(scope, digest)] = threading.Event()
            return running

    def release(self, scope: object, digest: Digest) -> None:
        with self._lock:
            self._running.pop((scope, digest)).set()


_IN_FLIGHT = _InFlight()


class _Handoff:
    """A bounded in-process pipe of bytes objects: what the producer writes reaches the reader uncopied.

    (An OS pipe copied every byte into the kernel and out again: 7% of a recompression's CPU.)
    """

    def __init__(self, limit: int) -> None:
        self._chunks: deque[bytes] = deque()
        self._held = 0
        self._limit = limit
        self._cond = threading.Condition()
        self._ended = False      # the producer wrote its last byte (or failed)
        self._abandoned = False  # the reader went away: the producer's next write fails

    def write(self, data: bytes | bytearray | memoryview) -> int:
        n = len(data)
        if not n:
            return 0
        chunk = data if isinstance(data, bytes) else bytes(data)  # a writer may reuse its own buffer
        with self._cond:
            while self._held >= self._limit and not self._abandoned:
                self._cond.wait()
            if self._abandoned:
                raise BrokenPipeError("the reader of this stream is gone")
            self._chunks.append(chunk)
            self._held += n
            self._cond.notify_all()
        return n

    def flush(self) -> None:
        """Nothing is held back: each write is readable at once."""

    def end(self) -> None:
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def read(self, n: int) -> bytes:
        with self._cond:
            while not self._chunks and not self._ended:
                self._cond.wait()
            if not self._chunks:
                return b""
            chunk = self._chunks[0]
            if len(chunk) > n:
                self._chunks[0] = chunk[n:]
                chunk = chunk[:n]
            else:
                self._chunks.popleft()
            self._held -= len(chunk)
            self._cond.notify_all()
            return chunk

    def abandon(self) -> None:
        with self._cond:
            self._abandoned = True
            self._chunks.clear()
            self._held = 0
            self._cond.notify_all()


class ProducerReader:
    """The output of `produce(sink)`, run in its own thread, as a readable stream.

    Compression runs beside hashing and writing; an error in the producer surfaces on
    the reader's next read, so the consumer never mistakes a failed stream for a whole one.
    """

    def __init__(self, produce: Callable[[BinaryIO], None]) -> None:
        self._pipe = _Handoff(2 * CHUNK)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(produce,), daemon=True)
        self._thread.start()

    def _run(self, produce: Callable[[BinaryIO], None]) -> None:
        try:
            produce(self._pipe)  # type: ignore[arg-type]
        except BaseException as err:  # noqa: BLE001 - handed to the reading thread
            self._error = err
        finally:
            self._pipe.end()

    def read(self, n: int = -1) -> bytes:
        data = self._pipe.read(CHUNK if n is None or n < 0 else n)
        if not data:
            self._thread.join()
            if self._error is not None:
                raise self._error
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._pipe.abandon()
        self._thread.join()


def _pump(src: BinaryIO, sink: BinaryIO) -> None:
    while chunk := src.read(CHUNK):
        sink.write(chunk)


def copy_blob(src: ImageSource, dst: ImageDestination, desc: Descriptor, plan: BlobPlan = KEEP, *,
              kind: str = "blob", progress: Progress | None = None, is_config: bool = False) -> CopiedBlob:
    scope = None if plan.rewrites else getattr(dst, "blob_scope", None)
    if scope is None:
        return _copy_blob(src, dst, desc, plan, kind, progress, is_config)
    while (running := _IN_FLIGHT.claim(scope, desc.digest)) is not None:
        running.wait()  # then the destination has it (try_reuse_blob says so), or that copy failed: try again
    try:
        return _copy_blob(src, dst, desc, plan, kind, progress, is_config)
    finally:
        _IN_FLIGHT.release(scope, desc.digest)


def _copy_blob(src: ImageSource, dst: ImageDestination, desc: Descriptor, plan: BlobPlan, kind: str,
               progress: Progress | None, is_config: bool) -> CopiedBlob:
    task = progress.blob(kind, desc) if progress else None
    # -- step: reuse what the destination already has
    if not plan.rewrites and dst.try_reuse_blob(desc):
        if task:
            task.finish("skipped: already exists")
        return CopiedBlob(desc, reused=True)
    # -- step: read and verify against the source descriptor (the compressors load with the first blob that
    # moves: a copy whose blobs are all at the destination already needs none)
    from imagetool import compression

    raw = src.get_blob(desc)
    try:
        verified = VerifyingReader(raw, desc.digest, desc.size)
        stream: Readable = task.wrap(verified) if task else verified
        if not plan.rewrites and _claims_compression(desc, dst):
            # -- step: a layer typed as compressed may hold a plain tar (docker-archive sources do);
            # a destination that wants compressed layers gets them compressed for real
            algorithm, stream = compression.sniff(stream)
            if algorithm is None:
                plan = BlobPlan("rewrite", compression.GZIP, plan.level, None)
        if not plan.rewrites:
            stored = dst.put_blob(stream, desc, is_config=is_config)
            result = CopiedBlob(stored.with_(media_type=desc.media_type, annotations=desc.annotations))
        else:
            with _REWRITE_SLOTS:
                result = _rewrite(dst, desc, stream, plan)
            verified.drain()  # a decompressor may stop at its end marker: check the rest too
    finally:
        raw.close()
    if task:
        task.finish()
    return result


def _claims_compression(desc: Descriptor, dst: ImageDestination) -> bool:
    wants = dst.traits.layer_compression == "compress" or dst.traits.compresses_plain_layers
    return wants and media.layer_compression(desc.media_type) is not None


def _rewrite(dst: ImageDestination, desc: Descriptor, stream: Readable, plan: BlobPlan) -> CopiedBlob:
    from imagetool import compression
    from imagetool.layer import chunked

    # -- step: decompress and hash the uncompressed bytes (the diff_id), once
    algorithm, sniffed = compression.sniff(stream)
    known_diff_id: Digest | None = None
    diff_is_output = False
    if algorithm is None and desc.digest.algorithm == "sha256":
        # a plain tar's diff_id is its own digest, which the verifying reader checks at EOF
        diff: Readable = sniffed
        known_diff_id = desc.digest
    elif plan.compression is None:
        # decompressed as it is stored: the destination's digest of the blob is the diff_id
        diff = compression.decompressor(sniffed, algorithm)
        diff_is_output = True
    elif plan.expected_diff_id is not None:
        # recompressed: the config names the diff_id, the bytes are a verified blob's, decompressed and passed on
        # unchanged, so the new layer is exactly as consistent with the config as the source's; what keys by
        # diff_id checks it as it unpacks (store/snapshots.py, containers-storage's staging), as skopeo leaves
        # it to them
        diff = compression.decompressor(sniffed, algorithm)
        known_diff_id = plan.expected_diff_id
    else:
        diff = DigestingReader(compression.decompressor(sniffed, algorithm))
    # -- step: recompress in a producer thread (or pass the tar through)
    added: dict[str, str] = {}
    if plan.compression is None:
        out: BinaryIO = diff  # type: ignore[assignment]
        producer = None
    else:
        def produce(sink: BinaryIO) -> None:
            if plan.compression == chunked.NAME:
                writer: compression._CompressWriter | chunked.ChunkedWriter = chunked.ChunkedWriter(sink, plan.level)
            else:
                writer = compression.compressor(sink, plan.compression, plan.level)  # type: ignore[arg-type]
            _pump(diff, writer)  # type: ignore[arg-type]
            added.update(writer.close() or {})  # not on error: the reader sees the error, not a short stream

        producer = ProducerReader(produce)
        out = producer  # type: ignore[assignment]
    try:
        stored = dst.put_blob(out, None)
    finally:
        if producer is not None:
            producer.close()
    if known_diff_id is not None:
        diff_id = known_diff_id
    elif diff_is_output:
        diff_id = stored.digest
    else:
        diff_id = diff.digest()  # type: ignore[attr-defined]
    if plan.expected_diff_id is not None and diff_id != plan.expected_diff_id:
        raise DigestMismatch(plan.expected_diff_id, diff_id)
    if algorithm is None and plan.compression is None:
        mt = desc.media_type  # already a plain tar, whatever its type says: passed through as it is
    else:
        mt = media.layer_type(media.is_oci(desc.media_type), chunked.algorithm(plan.compression),
                              media.is_nondistributable(desc.media_type))
    # the source's zstd:chunked annotations describe the old bytes: dropped, and the new ones added
    annotations = {**(chunked.strip_annotations(desc.annotations) or {}), **added}
    return CopiedBlob(Descriptor(mt, stored.digest, stored.size, annotations), diff_id)
