"""oci-archive:PATH[:REF] — an OCI image layout in a tar file.

A source extracts the archive (streamed, refusing links, devices and escaping names) into
a private temp directory and reads it as an oci: layout. A destination fills a temp layout
and, on commit, streams it into a tar beside PATH that is renamed over PATH. Like
containers/image, writing replaces the whole archive: other images it held are not kept.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from imagetool import compression
from imagetool.digest import CHUNK
from imagetool.descriptor import Descriptor
from imagetool.digest import Digest
from imagetool.errors import LayoutError, ManifestUnknown, NotFound, UnsafeContent
from imagetool.store import refs
from imagetool.outputs import OutputFile
from imagetool.store.layout import INDEX_FILE, OCI_LAYOUT_FILE, TEMP_PREFIX, LayoutStore
from imagetool.transports.base import ImageDestination, ImageSource, SystemContext
from imagetool.transports.oci import OCI_TRAITS, LayoutDestination, LayoutSource, PathReference, split_path_and_ref

TRANSPORT_NAME = "oci-archive"


# -- reading a tar safely


def member_path(name: str) -> PurePosixPath | None:
    """The relative path of a tar entry, or None for the archive root; escaping names are refused."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts:
        raise UnsafeContent(f"archive entry {name!r} points outside the archive")
    parts = [p for p in path.parts if p not in ("", ".")]
    return PurePosixPath(*parts) if parts else None


def extract_layout(archive: str, dest: Path) -> None:
    """Stream an archive of a layout into `dest`: only directories and regular files are accepted."""
    try:
        with open(archive, "rb") as raw, _plain(raw) as plain, tarfile.open(fileobj=plain, mode="r|") as tar:
            for member in tar:
                rel = member_path(member.name)
                if rel is None:
                    continue
                target = dest.joinpath(*rel.parts)
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                elif member.isreg():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    _extract_file(tar, member, target)
                else:
                    raise UnsafeContent(f"archive entry {member.name!r} is a link or special file; "
                                        "an OCI archive holds only directories and regular files")
            end = tar.offset
        _check_tail(archive, end)
    except FileNotFoundError as err:
        raise LayoutError(f"{archive}: no such file") from err
    except IsADirectoryError as err:
        raise LayoutError(f"{archive}: is a directory, not an archive") from err
    except (tarfile.TarError, EOFError) as err:
        raise LayoutError(f"{archive}: truncated or corrupt archive: {err}") from err
    except LayoutError as err:
        if type(err) is not LayoutError or str(err).startswith(str(archive)):
            raise
        raise LayoutError(f"{archive}: truncated or corrupt archive: {err}") from err  # from the decompressor


def _plain(raw: BinaryIO) -> BinaryIO:
    """The tar inside an archive file compressed with gzip, zstd, xz or bzip2 (or not at all), streamed."""
    algorithm, sniffed = compression.sniff_archive(raw)
    return compression.decompressor(sniffed, algorithm)


def _check_tail(archive: str, end: int) -> None:
    """After the last entry a plain tar holds only zero blocks; anything else is a cut-off header."""
    with open(archive, "rb") as f:
        if compression.detect_archive(f.read(compression.ARCHIVE_MAGIC_LEN)) is not None:
            return  # a compressed archive is checked by its decompressor
        f.seek(end)
        while chunk := f.read(CHUNK):
            if chunk.count(0) != len(chunk):
                raise LayoutError(f"{archive}: truncated or corrupt archive (an entry after offset {end} is cut short)")


def _extract_file(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> None:
    src = tar.extractfile(member)
    assert src is not None
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(target, flags, 0o644)
    with os.fdopen(fd, "wb") as out:
        left = member.size
        while left > 0:
            chunk = src.read(min(CHUNK, left))
            if not chunk:
                raise LayoutError(f"archive entry {member.name!r} is truncated")
            out.write(chunk)
            left -= len(chunk)


# -- writing a tar


def layout_entries(root: Path) -> list[str]:
    """What an archive of a layout holds, in a stable order; locks and temp files stay out."""
    names = [OCI_LAYOUT_FILE, INDEX_FILE, "blobs"]
    for alg_dir in sorted((root / "blobs").iterdir()):
        if not alg_dir.is_dir():
            continue
        names.append(f"blobs/{alg_dir.name}")
        names.extend(f"blobs/{alg_dir.name}/{b.name}" for b in sorted(alg_dir.iterdir())
                     if b.is_file() and not b.name.startswith(TEMP_PREFIX))
    return names


def write_tar_atomically(root: Path, names: list[str], path: str) -> None:
    """Tar `names` (relative to `root`) into a temp file, then publish it at `path` (outputs.OutputFile)."""
    out = OutputFile(path)
    try:
        with out.open() as f:
            with tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar:
                tar.copybufsize = CHUNK  # type: ignore[attr-defined]
                for name in names:
                    full = root / name
                    info = tar.gettarinfo(str(full), arcname=name)
                    info.uid = info.gid = 0
                    info.uname = info.gname = ""
                    if info.isreg():
                        with open(full, "rb") as data:
                            tar.addfile(info, data)
                    else:
                        tar.addfile(info)
    except BaseException:
        out.abort()
        raise
    out.commit()


# -- the transport


class ArchiveSource(LayoutSource):
    """A LayoutSource over an extracted copy that is removed on close."""

    def __init__(self, reference: OCIArchiveReference, tmp: Path) -> None:
        try:
            store = LayoutStore.open(tmp)
            top = refs.resolve(store, reference.name)
        except LayoutError as err:
            reason = str(err).replace(f"{tmp}/", "").replace(str(tmp), "archive")
            raise LayoutError(f"{reference.path}: not a complete OCI archive: {reason}") from err
        except ManifestUnknown as err:  # the archive is fine, the image is not in it (exit 2)
            raise ManifestUnknown(str(err).replace(str(tmp), reference.path)) from err
        super().__init__(reference, store, top)
        self._tmp = tmp
        self._path = reference.path

    def get_manifest(self, instance: Digest | None = None) -> tuple[bytes, str]:
        try:
            return super().get_manifest(instance)
        except (NotFound, LayoutError) as err:
            raise LayoutError(f"{self._path}: incomplete archive: {self._strip(err)}") from err

    def get_blob(self, desc: Descriptor) -> BinaryIO:
        try:
            return super().get_blob(desc)
        except NotFound as err:
            raise LayoutError(f"{self._path}: incomplete archive: {self._strip(err)}") from err

    def _strip(self, err: Exception) -> str:
        return str(err).replace(f" in {self._tmp}", "").replace(str(self._tmp), "archive")

    def close(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)


class ArchiveDestination(LayoutDestination):
    """A LayoutDestination over a temp layout that commit() turns into the archive at PATH."""

    def __init__(self, reference: OCIArchiveReference, tmp: Path) -> None:
        super().__init__(reference, LayoutStore.create(tmp), reference.name, OCI_TRAITS)
        self._tmp = tmp
        self._path = reference.path

    def commit(self) -> None:
        super().commit()
        write_tar_atomically(self._tmp, layout_entries(self._tmp), self._path)

    def close(self) -> None:
        try:
            super().close()
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)


class OCIArchiveReference(PathReference):
    transport_name = TRANSPORT_NAME

    def open_source(self, ctx: SystemContext) -> ImageSource:
        if not os.path.exists(self.path):
            raise LayoutError(f"{self.path}: no such file")
        tmp = Path(tempfile.mkdtemp(prefix="oci-archive-", dir=ctx.temp_dir))
        try:
            extract_layout(self.path, tmp)
            return ArchiveSource(self, tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def open_destination(self, ctx: SystemContext) -> ImageDestination:
        if os.path.isdir(self.path):
            raise LayoutError(f"{self.path}: is a directory, not an archive")
        parent = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(parent):
            raise LayoutError(f"{self.path}: directory {parent} does not exist")
        tmp = Path(tempfile.mkdtemp(prefix="oci-archive-", dir=ctx.temp_dir))
        try:
            return ArchiveDestination(self, tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def parse(text: str) -> OCIArchiveReference:
    path, name = split_path_and_ref(text, TRANSPORT_NAME)
    return OCIArchiveReference(path, name)
