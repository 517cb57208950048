"""Layers of a containers/storage overlay store: staging one from a blob, naming it, reading it back.

A blob is decompressed into a staging directory (hashing both forms), its tar-split recorded, and its tar
unpacked into `diff/` with overlay whiteouts (the unpacker's "overlay" mode: 0/0 character devices and
the opaque xattr, as containers/storage's overlay driver stores them). Only a layer that unpacked whole
is moved into overlay/<id> and listed in layers.json, under the store's write locks.

Layer ids are containers/image's: the diff_id's hex for a base layer, sha256("<parent id>+<diff_id hex>")
above one, so podman finds our layers and we find its.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from imagetool import compression, userns
from imagetool.digest import CHUNK, Digest, DigestingReader, Readable, VerifyingReader
from imagetool.errors import BlobUnknown, IntegrityError, LayerError
from imagetool.layer.chunked_tar import rfc3339
from imagetool.layer.iterstream import IteratorStream
from imagetool.transports.containers_storage import tarsplit
from imagetool.transports.containers_storage.store import Store

DIFF_MODE = 0o555
#: archive.Compression values containers/storage records
_COMPRESSION = {None: 0, "bzip2": 1, "gzip": 2, "xz": 3, "zstd": 4}


def layer_id(diff_id: Digest, parent: str | None) -> str:
    if not parent:
        return diff_id.hex
    return hashlib.sha256(f"{parent}+{diff_id.hex}".encode()).hexdigest()


def _short_id() -> str:
    """An overlay link name: 26 characters of base32, like containers/storage's generateID."""
    return base64.b32encode(os.urandom(20)).decode()[:26]


@dataclass
class Staged:
    """A layer unpacked outside the store's names, waiting for its id."""

    dir: Path
    compressed_digest: Digest
    compressed_size: int
    diff_id: Digest
    diff_size: int
    compression: str | None
    uids: list[int]
    gids: list[int]
    has_root: bool = False
    root_owner: tuple[int, int] = (0, 0)

    @property
    def diff(self) -> Path:
        return self.dir / "diff"

    @property
    def tarsplit(self) -> Path:
        return self.dir / "tar-split.gz"

    def discard(self) -> None:
        userns.remove_tree(self.dir)


def stage(store: Store, stream: Readable, expected: Digest | None = None, size: int | None = None) -> Staged:
    """Decompress, record and unpack a layer blob; a bad blob (digest, tar, unsafe names) leaves nothing."""
    from imagetool.layer.unpack import UnpackOptions, unpack

    store.ensure()
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="layer-", dir=store.staging_root()))
    try:
        raw: Readable = VerifyingReader(stream, expected, size) if expected is not None else stream
        counted = DigestingReader(raw)
        algorithm, plain = compression.auto_decompressor(counted)  # type: ignore[arg-type]
        hashed = DigestingReader(plain)
        tar_path = work / "layer.tar"
        diff_size = 0
        with open(tar_path, "wb") as out:
            while block := hashed.read(CHUNK):
                out.write(block)
                diff_size += len(block)
        while counted.read(CHUNK):  # trailing bytes after the compressed stream still count
            pass
        ids = tarsplit.record(str(tar_path), str(work / "tar-split.gz"))
        (work / "diff").mkdir(mode=0o755)
        with open(tar_path, "rb") as tar:
            userns.consume(lambda pipe: unpack(pipe, work / "diff", UnpackOptions(whiteouts="overlay")), tar)
        os.unlink(tar_path)
        return Staged(work, counted.digest(), counted.size, hashed.digest(), diff_size, algorithm,
                      sorted(ids.uids), sorted(ids.gids), ids.has_root, ids.root_owner)
    except BaseException:
        userns.remove_tree(work)
        raise


def _own_root(path: str, owner: tuple[int, int], mode: int) -> None:
    if os.geteuid() == 0:  # root, or root of the store's user namespace (as the unpacker decides)
        os.chown(path, *owner)
    os.chmod(path, mode)


def _copy_into(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    shutil.copyfile(src, tmp)
    os.chmod(tmp, 0o600)
    os.replace(tmp, dst)


def drop_incomplete(store: Store, layers: list[dict[str, Any]]) -> None:
    """Layers a killed containers/storage writer left flagged incomplete go, as containers/storage itself
    removes them when it next loads the store (the caller holds the write locks)."""
    for entry in [e for e in layers if incomplete(e)]:
        remove(store, layers, str(entry["id"]))


def incomplete(entry: dict[str, Any]) -> bool:
    flags = entry.get("flags")
    return isinstance(flags, dict) and bool(flags.get("incomplete"))


def find(layers: list[dict[str, Any]], layer: str) -> dict[str, Any] | None:
    return next((entry for entry in layers if entry.get("id") == layer), None)


def install(store: Store, layers: list[dict[str, Any]], staged: Staged, new_id: str, parent: str | None) -> None:
    """Name a staged layer `new_id` above `parent` (the caller holds the store's write locks and saves
    `layers`, to which the record is appended)."""
    home = store.overlay / new_id
    if home.exists():  # a directory without a record: what a killed writer left
        userns.remove_tree(home)
    home.mkdir(mode=0o700)
    # containers/storage makes a diff 0555, or with its parent's diff's mode; a tar's "./" member overrides it
    if staged.has_root:
        mode = stat.S_IMODE(os.stat(staged.diff).st_mode)
    else:
        mode = stat.S_IMODE(os.stat(store.diff_dir(parent)).st_mode) if parent else DIFF_MODE
    os.chmod(staged.diff, mode | stat.S_IWUSR)  # moving a directory needs write permission on it (rootless)
    os.rename(staged.diff, home / "diff")
    if staged.has_root:
        # the unpacker leaves the root's owner alone; containers/storage gives it the tar's (in the store's
        # user namespace, rootless)
        userns.call(_own_root, str(home / "diff"), staged.root_owner, mode)
    else:
        os.chmod(home / "diff", mode)
    link = _short_id()
    os.symlink(f"../{new_id}/diff", store.overlay / "l" / link)
    (home / "link").write_text(link)
    (home / "work").mkdir(mode=0o700)
    (home / "merged").mkdir(mode=0o700)
    if parent:
        parent_home = store.overlay / parent
        lowers = ["l/" + (parent_home / "link").read_text().strip()]
        try:
            lowers.append((parent_home / "lower").read_text().strip())
        except FileNotFoundError:
            pass
        (home / "lower").write_text(":".join(x for x in lowers if x))
    else:
        (home / "empty").mkdir(mode=0o700)
    _copy_into(staged.tarsplit, store.tarsplit_path(new_id))  # overlay-layers/ may be on another mount
    record: dict[str, Any] = {"id": new_id}
    if parent:
        record["parent"] = parent
    record["created"] = rfc3339(time.time_ns())
    record["compressed-diff-digest"] = str(staged.compressed_digest)
    record["compressed-size"] = staged.compressed_size
    record["diff-digest"] = str(staged.diff_id)
    record["diff-size"] = staged.diff_size
    if _COMPRESSION.get(staged.compression):
        record["compression"] = _COMPRESSION[staged.compression]
    if staged.uids:
        record["uidset"] = staged.uids
    if staged.gids:
        record["gidset"] = staged.gids
    layers.append(record)
    staged.discard()


def remove(store: Store, layers: list[dict[str, Any]], victim: str) -> None:
    """Take a layer's files away and drop its record from `layers` (the caller holds the locks)."""
    home = store.overlay / victim
    try:
        link = (home / "link").read_text().strip()
        if link and "/" not in link:
            os.unlink(store.overlay / "l" / link)
    except FileNotFoundError:
        pass
    try:
        os.unlink(store.tarsplit_path(victim))
    except FileNotFoundError:
        pass
    if home.exists():
        userns.remove_tree(home)
    layers[:] = [entry for entry in layers if entry.get("id") != victim]


def chain(layers: list[dict[str, Any]], top: str | None) -> list[dict[str, Any]]:
    """The layer records from the base up to `top`."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    while top:
        if top in seen:
            raise LayerError(f"containers-storage: the layer chain loops at {top}")
        seen.add(top)
        entry = find(layers, top)
        if entry is None:
            raise BlobUnknown(f"containers-storage: layer {top} is not in the store")
        out.append(entry)
        top = entry.get("parent")
    return out[::-1]


def open_diff(store: Store, entry: dict[str, Any]) -> Readable:
    """The layer's tar, exact when containers/storage (or we) kept its tar-split; checked against its
    diff-digest either way, so a changed diff fails rather than passing as the layer."""
    layer = str(entry["id"])
    tsplit = store.tarsplit_path(layer)
    diff = store.diff_dir(layer)
    parts: Iterator[bytes]
    if tsplit.exists():
        parts = tarsplit.assemble(str(tsplit), str(diff))
    else:
        parts = _naive_diff(diff)
    stream: Readable = IteratorStream(parts)
    expected = entry.get("diff-digest")
    if isinstance(expected, str) and expected:
        size = entry.get("diff-size")
        stream = VerifyingReader(stream, Digest.parse(expected), size if isinstance(size, int) and size > 0 else None)
    return stream if tsplit.exists() else _Explained(stream, layer)


class _Explained:
    """A layer rebuilt without its tar-split: a mismatch says why it could happen."""

    def __init__(self, inner: Readable, layer: str) -> None:
        self._inner = inner
        self._layer = layer

    def read(self, n: int = -1) -> bytes:
        try:
            return self._inner.read(n)
        except IntegrityError as err:
            raise LayerError(f"containers-storage: layer {self._layer} has no tar-split, and the tar of its "
                             f"diff directory is not the layer it was ({err})") from err

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()


def _naive_diff(diff: Path) -> Iterator[bytes]:
    """A layer without a tar-split: the tar of its diff directory, as containers/storage's naive diff."""
    import tempfile

    from imagetool.layer.diff import write_diff

    with tempfile.TemporaryFile() as spool:
        write_diff(diff, spool)  # type: ignore[arg-type]
        spool.seek(0)
        while block := spool.read(CHUNK):
            yield block


def clear_staging(store: Store) -> None:
    """Staging directories older than a day are what killed writers left."""
    root = store.staging_root()
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return
    for e in entries:
        try:
            if time.time() - e.stat(follow_symlinks=False).st_mtime > 86400:
                shutil.rmtree(e.path, ignore_errors=True)
        except OSError:
            pass
