"""dir:PATH — skopeo's directory format: one file per blob, manifest.json, signature-N, a version file.

Blobs are named by their hex digest, instance manifests of an index by `<hex>.manifest.json`
and their signatures by `<hex>.signature-N`. A destination replaces the image already in the
directory (as containers/image does), but only at commit: until then every new file is
tracked and removed again if the copy fails, so a failed copy leaves the directory as it was.
Temp files are locked by their writer, so the next destination removes a killed copy's.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from typing import BinaryIO, Sequence

from imagetool.descriptor import Descriptor
from imagetool.digest import CHUNK, Digest, DigestingWriter, Readable, VerifyingReader, digest_file
from imagetool.errors import BlobUnknown, InvalidReference, LayoutError, ManifestUnknown, SizeMismatch
from imagetool.manifest import guess_media_type
from imagetool.store import tempfiles
from imagetool.store.layout import TEMP_PREFIX, atomic_write, fsync_dir
from imagetool.transports.base import (
    DestinationBase,
    DestinationTraits,
    ImageDestination,
    ImageSource,
    ReferenceBase,
    SourceBase,
    SystemContext,
)
from imagetool.transports.oci import path_scopes

TRANSPORT_NAME = "dir"
VERSION_FILE = "version"
VERSION = b"Directory Transport Version: 1.1\n"
#: versions of an existing directory a destination may overwrite (a source, like skopeo, does not check)
KNOWN_VERSIONS = (VERSION, b"Directory Transport Version: 1.0\n")
MANIFEST_FILE = "manifest.json"
MANIFEST_MAX = 32 << 20

DIR_TRAITS = DestinationTraits(supports_signatures=True)


def blob_name(digest: Digest) -> str:
    return digest.hex


def manifest_name(instance: Digest | None) -> str:
    return f"{instance.hex}.{MANIFEST_FILE}" if instance else MANIFEST_FILE


def signature_name(index: int, instance: Digest | None) -> str:
    """`signature-1`... (1-based), or `<hex>.signature-N` for an instance of an index."""
    base = f"signature-{index + 1}"
    return f"{instance.hex}.{base}" if instance else base


class DirReference(ReferenceBase):
    transport_name = TRANSPORT_NAME

    def __init__(self, path: str) -> None:
        self.path = path

    def string_within_transport(self) -> str:
        return self.path

    def policy_scopes(self) -> list[str]:
        return path_scopes(self.path) + [""]

    def open_source(self, ctx: SystemContext) -> ImageSource:
        return DirSource(self)

    def open_destination(self, ctx: SystemContext) -> ImageDestination:
        return DirDestination(self)


class DirSource(SourceBase):
    def __init__(self, reference: DirReference) -> None:
        self.reference = reference  # type: ignore[assignment]
        self.root = Path(reference.path)
        if not self.root.is_dir():
            what = "does not exist" if not self.root.exists() else "is not a directory"
            raise LayoutError(f"dir:{reference.path}: {what}")

    def get_manifest(self, instance: Digest | None = None) -> tuple[bytes, str]:
        path = self.root / manifest_name(instance)
        try:
            with open(path, "rb") as f:
                raw = f.read(MANIFEST_MAX + 1)
        except FileNotFoundError as err:
            what = f"manifest {instance}" if instance else "manifest.json"
            raise ManifestUnknown(f"dir:{self.root}: no {what}") from err
        if len(raw) > MANIFEST_MAX:
            raise LayoutError(f"{path}: manifest larger than {MANIFEST_MAX} bytes")
        return raw, guess_media_type(raw)

    def get_blob(self, desc: Descriptor) -> BinaryIO:
        try:
            return open(self.root / blob_name(desc.digest), "rb")
        except FileNotFoundError as err:
            raise BlobUnknown(f"blob {desc.digest} not found in dir:{self.root}") from err

    def get_signatures(self, instance: Digest | None = None) -> list[bytes]:
        signatures: list[bytes] = []
        while True:
            path = self.root / signature_name(len(signatures), instance)
            try:
                signatures.append(path.read_bytes())
            except FileNotFoundError:
                return signatures


class DirDestination(DestinationBase):
    """Writes a dir: image; the previous image's files go only once the new one is complete."""

    traits = DIR_TRAITS

    def __init__(self, reference: DirReference) -> None:
        self.reference = reference  # type: ignore[assignment]
        self.root = Path(reference.path)
        self._created_root = False
        self._before: set[str] = set()
        if self.root.exists() or self.root.is_symlink():
            if not self.root.is_dir():
                raise LayoutError(f"dir:{reference.path}: exists and is not a directory")
            tempfiles.sweep([self.root])
            self._before = set(os.listdir(self.root))
            if self._before:
                version = self.root / VERSION_FILE
                if not version.is_file() or version.read_bytes() not in KNOWN_VERSIONS:
                    raise LayoutError(f"dir:{reference.path}: directory is not empty and does not hold a "
                                      "dir: image; refusing to overwrite it")
        else:
            try:
                self.root.mkdir(parents=True)
            except OSError as err:
                raise LayoutError(f"dir:{reference.path}: cannot create directory: {err.strerror}") from err
            self._created_root = True
        self._lock = threading.Lock()
        self._created: set[str] = set()   # new names this destination wrote
        self._kept: set[str] = set()      # names of the previous image that the new one uses too
        self._manifest: bytes | None = None
        self._signatures: dict[Digest | None, list[bytes]] = {}
        self._committed = False

    # -- blobs

    def try_reuse_blob(self, desc: Descriptor) -> bool:
        name = blob_name(desc.digest)
        with self._lock:
            if name in self._created or name in self._kept:
                return True
        if name not in self._before:
            return False
        path = self.root / name
        try:
            if path.stat().st_size != desc.size or digest_file(str(path), desc.digest.algorithm)[0] != desc.digest:
                return False
        except FileNotFoundError:
            return False
        with self._lock:
            self._kept.add(name)
        return True

    def put_blob(self, stream: Readable, desc: Descriptor | None, *, is_config: bool = False) -> Descriptor:
        fd, tmp = tempfiles.create(self.root)
        try:
            with os.fdopen(fd, "wb") as f:
                if desc is None:
                    sink = DigestingWriter(f)
                    while chunk := stream.read(CHUNK):
                        sink.write(chunk)
                    digest, size = sink.digest(), sink.size
                else:
                    reader = stream if isinstance(stream, VerifyingReader) and stream.expected == desc.digest \
                        else VerifyingReader(stream, desc.digest, desc.size)
                    while chunk := reader.read(CHUNK):
                        f.write(chunk)
                    if not reader.verified or reader.size != desc.size:
                        raise SizeMismatch(desc.digest, desc.size, reader.size)
                    digest, size = desc.digest, reader.size
                f.flush()
                os.fsync(f.fileno())
                name = blob_name(digest)
                os.fchmod(f.fileno(), 0o644)
                os.replace(tmp, self.root / name)  # while the temp file is still locked
        except BaseException:
            _unlink(tmp)
            raise
        with self._lock:
            if name in self._before:
                self._kept.add(name)
            else:
                self._created.add(name)
        return Descriptor(desc.media_type if desc else "application/octet-stream", digest, size)

    # -- manifests and signatures

    def put_manifest(self, raw: bytes, media_type: str, instance: Digest | None = None) -> None:
        if instance is None:
            self._manifest = raw
            return
        name = manifest_name(instance)
        atomic_write(self.root / name, raw)
        with self._lock:
            (self._kept if name in self._before else self._created).add(name)

    def put_signatures(self, signatures: Sequence[bytes], instance: Digest | None = None) -> None:
        self._signatures[instance] = list(signatures)

    def commit(self) -> None:
        if self._manifest is None:
            raise ManifestUnknown("commit before the manifest was written")
        final: set[str] = set(self._created | self._kept)
        for instance, signatures in self._signatures.items():
            for i, sig in enumerate(signatures):
                name = signature_name(i, instance)
                atomic_write(self.root / name, sig)
                final.add(name)
        atomic_write(self.root / VERSION_FILE, VERSION)
        fsync_dir(self.root)  # every blob's entry is durable before manifest.json names it
        atomic_write(self.root / MANIFEST_FILE, self._manifest)
        final |= {VERSION_FILE, MANIFEST_FILE}
        self._committed = True
        # -- step: drop what is left of the previous image
        for name in self._before - final:
            _remove(self.root / name)
        fsync_dir(self.root)

    def close(self) -> None:
        if self._committed:
            return
        for name in self._created:
            _unlink(self.root / name)
        for path in self.root.glob(TEMP_PREFIX + "*"):
            if path.name not in self._before:
                _unlink(path)
        if self._created_root:
            try:
                self.root.rmdir()
            except OSError:
                pass


def _unlink(path: str | Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        _unlink(path)


def parse(text: str) -> DirReference:
    if not text:
        raise InvalidReference("dir: reference has no path")
    return DirReference(text)
