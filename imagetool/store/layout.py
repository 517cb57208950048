"""LayoutStore: an OCI image layout on disk, the engine under oci:, oci-archive: and the local store.

Every write is temp file + rename, so a killed process leaves a valid layout (at worst
with orphan blobs and temp files, which the next writer or gc removes: see tempfiles.py).
Blobs are not fsynced one by one: every blob a commit names is fsynced together right before
index.json is replaced (durable.py), then each directory that received renames, and the
layout directory after index.json is replaced, so a power loss never leaves index.json
naming a blob whose content or directory entry was lost.

index.json changes happen under an exclusive lock; copies hold a shared "use" lock that gc
waits for, so gc never removes blobs a running copy has written but not yet referenced. Both
locks are flocks on the layout's own directories (the use lock on the layout directory, the
index lock on blobs/), so a layout holds no files the image-spec does not list.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Sequence

from imagetool import gojson, media
from imagetool.descriptor import Descriptor
from imagetool.digest import CHUNK, Digest, DigestingWriter, Readable, VerifyingReader, verifier_of
from imagetool.errors import BlobUnknown, DigestMismatch, LayoutError, ManifestError, SizeMismatch
from imagetool.manifest import Index
from imagetool.manifest import parse as parse_manifest_bytes
from imagetool.store import durable, tempfiles
from imagetool.store.lock import HeldLock, file_lock
from imagetool.store.tempfiles import TEMP_PREFIX

OCI_LAYOUT_FILE = "oci-layout"
OCI_LAYOUT_VERSION = b'{"imageLayoutVersion":"1.0.0"}'
INDEX_FILE = "index.json"
BLOBS = "blobs"


def fsync_dir(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | Path, data: bytes, mode: int = 0o644, sync_dir: bool = False) -> None:
    """Write `path` whole or not at all; with `sync_dir`, the new directory entry is durable on return."""
    path = Path(path)
    fd, tmp = tempfiles.create(path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            os.fchmod(f.fileno(), mode)
            os.replace(tmp, path)  # renamed while the temp file is still locked
    except BaseException:
        _unlink(tmp)
        raise
    if sync_dir:
        fsync_dir(path.parent)


def _write_pending(root: Path, path: Path, data: bytes) -> None:
    """Write a small blob whole or not at all, durable at the next index update (see durable.py)."""
    fd, tmp = tempfiles.create(path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), 0o644)
            os.replace(tmp, path)  # renamed while the temp file is still locked
    except BaseException:
        _unlink(tmp)
        raise
    durable.note(root, path)


class _WritebackFile:
    """A blob's temp file, handed to the kernel's writeback every few MiB (without waiting for it).

    Writing back as the blob streams in spreads the disk's work over the copy, so the fsync at
    commit finds little left to do, and dirty pages never pile up to the size of a layer.
    """

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self._fd = f.fileno()
        self._written = 0
        self._queued = 0

    def write(self, data: bytes | memoryview) -> int:
        view = memoryview(data)
        while view:
            n = self._f.write(view)
            view = view[n:]
            self._written += n
        if self._written - self._queued >= durable.WRITEBACK_STEP:
            durable.start_writeback(self._fd, self._queued, self._written - self._queued)
            self._queued = self._written
        return len(data)

    def finish(self) -> None:
        if self._written > self._queued:
            durable.start_writeback(self._fd, self._queued, self._written - self._queued)
            self._queued = self._written


def _unlink(path: str | Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class LayoutStore:
    """Blobs at blobs/<alg>/<hex>, the image index at index.json, the version at oci-layout."""

    def __init__(self, root: str | Path, shared_blobs: str | Path | None = None) -> None:
        self.root = Path(root)
        #: where blobs live: <root>/blobs, or a directory several layouts share (skopeo's --shared-blob-dir,
        #: laid out as <dir>/<alg>/<hex>); a shared directory's blobs are never garbage-collected
        self.blobs = Path(shared_blobs) if shared_blobs else self.root / BLOBS
        self.shared = shared_blobs is not None and bool(shared_blobs)
        #: create() found no layout and no other files here: what a failed first write may take away
        self.created = False
        #: create() made the directory itself
        self.made_dir = False

    # -- opening

    @classmethod
    def open(cls, root: str | Path, shared_blobs: str | Path | None = None) -> LayoutStore:
        store = cls(root, shared_blobs)
        if not (store.root / OCI_LAYOUT_FILE).is_file():
            if not store.root.exists():
                raise LayoutError(f"{root}: no such OCI layout")
            raise LayoutError(f"{root}: not an OCI image layout (no {OCI_LAYOUT_FILE} file)")
        store._check_version()
        return store

    @classmethod
    def create(cls, root: str | Path, shared_blobs: str | Path | None = None) -> LayoutStore:
        """Open the layout at `root`, making an empty one if there is none."""
        store = cls(root, shared_blobs)
        if (store.root / OCI_LAYOUT_FILE).is_file():
            store._check_version()
            return store
        if store.root.exists() and not store.root.is_dir():
            raise LayoutError(f"{root}: exists and is not a directory")
        store.made_dir = not store.root.exists()
        store.created = store.made_dir or not any(store.root.iterdir())
        store.root.mkdir(parents=True, exist_ok=True)
        (store.root / BLOBS).mkdir(exist_ok=True)
        with file_lock(str(store.root / BLOBS)):
            if not (store.root / INDEX_FILE).exists():
                atomic_write(store.root / INDEX_FILE, Index.build(media.OCI_INDEX, []).raw)
            if not (store.root / OCI_LAYOUT_FILE).exists():
                atomic_write(store.root / OCI_LAYOUT_FILE, OCI_LAYOUT_VERSION)
            fsync_dir(store.root)
        return store

    def _check_version(self) -> None:
        try:
            doc = gojson.loads((self.root / OCI_LAYOUT_FILE).read_bytes(), OCI_LAYOUT_FILE)
        except ValueError as err:
            raise LayoutError(f"{self.root}: {err}") from err
        version = doc.get("imageLayoutVersion") if isinstance(doc, dict) else None
        if not isinstance(version, str) or not version.startswith("1."):
            raise LayoutError(f"{self.root}: unsupported image layout version {version!r}")

    # -- blobs

    def blob_path(self, digest: Digest) -> Path:
        return self.blobs / digest.algorithm / digest.hex

    def has_blob(self, digest: Digest) -> bool:
        return self.blob_path(digest).is_file()

    def blob_size(self, digest: Digest) -> int | None:
        try:
            return self.blob_path(digest).stat().st_size
        except FileNotFoundError:
            return None

    def open_blob(self, digest: Digest) -> BinaryIO:
        try:
            return open(self.blob_path(digest), "rb")
        except FileNotFoundError as err:
            raise BlobUnknown(f"blob {digest} not found in {self.root}") from err

    def read_blob(self, digest: Digest, max_size: int = 64 << 20) -> bytes:
        """Read a small blob (manifest, config) whole and verify it."""
        with self.open_blob(digest) as f:
            data = f.read(max_size + 1)
        if len(data) > max_size:
            raise ManifestError(f"blob {digest} is larger than {max_size} bytes")
        if Digest.of(data, digest.algorithm) != digest:
            raise LayoutError(f"{self.root}: blob {digest} is corrupt (content does not match its digest)")
        return data

    def put_blob(self, stream: Readable, expected: Digest | None = None, size: int | None = None,
                 algorithm: str = "sha256") -> tuple[Digest, int]:
        """Stream a blob in, hashing as it goes; with `expected`, nothing is kept unless it matches."""
        alg = expected.algorithm if expected else algorithm
        blob_dir = self.blobs / alg
        if not blob_dir.is_dir():
            blob_dir.mkdir(parents=True, exist_ok=True)
            fsync_dir(blob_dir.parent)
        fd, tmp = tempfiles.create(blob_dir)
        try:
            with os.fdopen(fd, "wb", buffering=0) as f:
                out = _WritebackFile(f)
                if expected is None:
                    sink = DigestingWriter(out, alg)
                    while chunk := stream.read(CHUNK):
                        sink.write(chunk)
                    digest, written = sink.digest(), sink.size
                else:
                    # a stream that already verifies this digest (itself, or the stream it passes on) is
                    # not hashed a second time
                    verifier = verifier_of(stream, expected)
                    if verifier is None:
                        stream = verifier = VerifyingReader(stream, expected, size)
                    readinto = getattr(stream, "readinto", None)
                    if readinto is not None:
                        buf = memoryview(bytearray(CHUNK))  # one buffer read into: no bytes object per read
                        while n := readinto(buf):
                            out.write(buf[:n])
                    else:
                        while chunk := stream.read(CHUNK):
                            out.write(chunk)
                    digest, written = expected, verifier.size
                    if not verifier.verified or (size is not None and size >= 0 and written != size):
                        raise SizeMismatch(expected, size if size is not None else -1, written)
                if expected is None and size is not None and size >= 0 and written != size:
                    raise SizeMismatch(digest, size, written)
                out.finish()
                os.fchmod(f.fileno(), 0o644)
                # renamed while the temp file is still locked, without waiting for the disk: the
                # blob and its directory are made durable before index.json names it (update_index)
                os.replace(tmp, blob_dir / digest.hex)
                durable.note(self.root, blob_dir / digest.hex)
            return digest, written
        except BaseException:
            _unlink(tmp)
            raise

    def put_bytes(self, data: bytes, expected: Digest | None = None) -> Digest:
        digest = Digest.of(data, expected.algorithm if expected else "sha256")
        if expected is not None and digest != expected:
            raise DigestMismatch(expected, digest)
        path = self.blob_path(digest)
        if not path.is_file():
            if not path.parent.is_dir():
                path.parent.mkdir(parents=True, exist_ok=True)
                fsync_dir(path.parent.parent)
            _write_pending(self.root, path, data)
        else:
            durable.note(self.root, path)  # named by this writer's commit: durable before it
        return digest

    def claim_blob(self, digest: Digest, size: int) -> bool:
        """Whether the layout has this blob at this size; if so, it is made durable before the next commit.

        Another writer's blob may not be on disk yet (it is fsynced at that writer's commit).
        """
        if self.blob_size(digest) != size:
            return False
        durable.note(self.root, self.blob_path(digest))
        return True

    def delete_blob(self, digest: Digest) -> None:
        _unlink(self.blob_path(digest))

    def iter_blobs(self) -> Iterator[Digest]:
        blobs = self.blobs
        if not blobs.is_dir():
            return
        for alg_dir in blobs.iterdir():
            if not alg_dir.is_dir():
                continue
            for entry in alg_dir.iterdir():
                if entry.name.startswith(TEMP_PREFIX):
                    continue
                try:
                    yield Digest(alg_dir.name, entry.name)
                except Exception:
                    continue

    def blob_dirs(self) -> list[Path]:
        blobs = self.blobs
        return [p for p in blobs.iterdir() if p.is_dir()] if blobs.is_dir() else []

    def iter_temp_files(self) -> Iterator[Path]:
        """Temp files in the layout, live writers' included."""
        for base in (self.root, *self.blob_dirs()):
            yield from base.glob(TEMP_PREFIX + "*")

    def sweep_temp_files(self) -> list[Path]:
        """Remove temp files whose writer is gone (never a live writer's: see tempfiles.py)."""
        return tempfiles.sweep([self.root, *self.blob_dirs()])

    # -- index.json

    def index(self) -> Index:
        try:
            raw = (self.root / INDEX_FILE).read_bytes()
        except FileNotFoundError as err:
            raise LayoutError(f"{self.root}: no {INDEX_FILE}") from err
        try:
            index = parse_manifest_bytes(raw, media.OCI_INDEX)
        except (ManifestError, ValueError) as err:
            raise LayoutError(f"{self.root}/{INDEX_FILE}: {err}") from err
        if not isinstance(index, Index):
            raise LayoutError(f"{self.root}/{INDEX_FILE} is not an image index")
        return index

    def update_index(self, change: Callable[[list[Descriptor]], Sequence[Descriptor]]) -> Index:
        """Apply `change` to index.json's entries under the index lock and write the result atomically."""
        (self.root / BLOBS).mkdir(exist_ok=True)
        with file_lock(str(self.root), shared=True), file_lock(str(self.root / BLOBS)):
            current = self.index()
            entries = list(change(list(current.manifests)))
            new = Index.build(media.OCI_INDEX, entries, current.annotations)
            # what the index names is durable first: the blobs, then their directory entries (also when
            # the index stays the same: a blob it names may have been written again, as a new file)
            if durable.flush(self.root) or new.raw != current.raw:
                for blob_dir in self.blob_dirs():
                    fsync_dir(blob_dir)
            if new.raw != current.raw:
                atomic_write(self.root / INDEX_FILE, new.raw, sync_dir=True)
            return new

    # -- locks

    @contextmanager
    def exclusive(self, timeout: float = 300.0) -> Iterator[None]:
        """Exclusive use of the store (gc); waits for every running writer to finish."""
        with file_lock(str(self.root), timeout=timeout):
            yield

    def hold_shared(self) -> HeldLock:
        """Marks the store in use by a writer until released, so gc keeps unreferenced new blobs."""
        return HeldLock(str(self.root), shared=True)
