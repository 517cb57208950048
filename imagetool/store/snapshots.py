"""Unpacked layers in the local store, ready to be overlay lowerdirs; each layer unpacked once.

A snapshot lives at <store>/snapshots/<alg>/<chain-id hex>/ with the tree in `fs/` and a
small `snapshot.json` (diff_id, parent chain, layer digest) beside it. It is keyed by the
chain ID (the OCI image-spec's ChainID: the diff_id for the bottom layer, then
sha256("<parent chain> <diff_id>")), as containerd keys its snapshots, so a directory
stands for a whole stack of layers and never for one layer reached by another path.

Rootless, layers are unpacked inside the store's user namespace (imagetool/userns.py), so
each file is owned by the host-side id of the owner the image gives it and a rootless
container sees the image's owners; removal goes through the same namespace. The mapping
is recorded in snapshots/idmap: trees unpacked under another one are set aside and redone.

Whiteouts are kept in overlay form (0/0 character devices, the opaque xattr), so the
directories are lowerdirs as they are. Creation is atomic: the layer is unpacked into a
temp dir under snapshots/ while its blob digest and its diff_id are checked on the fly,
and only a verified tree is renamed into place; a killed unpacker leaves a `.tmp-*`
directory that is never used and that gc removes; two unpackers racing on one layer both
finish, the second rename loses and the winner's tree is used. Snapshot work holds the
store's shared use-lock, so gc (which takes it exclusively) never deletes a tree in use.

A tree depends only on its layer, not on the layers below: the same layer on another parent (the
layers above a changed one keep their diff_ids but get new chain IDs) is cloned by hard links from
a published snapshot of it (imagetool/store/clone.py), built and published like an unpacked one.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from imagetool import media, userns
from imagetool.descriptor import Descriptor
from imagetool.digest import Digest, DigestingReader, Readable, VerifyingReader
from imagetool.errors import DigestMismatch, IntegrityError, LayerError, LayoutError, ManifestError, UnsafeContent
from imagetool.manifest import ImageConfig, Index, Manifest, parse
from imagetool.store.layout import TEMP_PREFIX, LayoutStore

if TYPE_CHECKING:
    from imagetool.layer.unpack import UnpackOptions

SNAPSHOTS = "snapshots"
TREE = "fs"
INFO = "snapshot.json"
#: a partial pull's index of a tree's file contents (imagetool/copy/partial.py), beside the tree
CONTENTS = "contents.json"
#: rootless: the id mapping the snapshots were unpacked with
IDS = "idmap"
#: threads of one process (a build's stages) check the mapping one at a time: two finding it stale at once
#: would each set aside the trees the other has just made
_ids_lock = threading.Lock()


def chain_id(parent: Digest | None, diff_id: Digest) -> Digest:
    if parent is None:
        return diff_id
    return Digest("sha256", hashlib.sha256(f"{parent} {diff_id}".encode()).hexdigest())


def chain_ids(diff_ids: list[Digest]) -> list[Digest]:
    out: list[Digest] = []
    for diff_id in diff_ids:
        out.append(chain_id(out[-1] if out else None, diff_id))
    return out


def remove_tree(path: Path | str) -> None:
    """rmtree that gets through directories a layer made read-only and, rootless, files of subordinate ids."""
    userns.remove_tree(path)


class SnapshotStore:
    def __init__(self, store: LayoutStore, options: UnpackOptions | None = None) -> None:
        self.store = store
        self.root = Path(store.root) / SNAPSHOTS
        #: None: overlay whiteouts (imagetool.layer.unpack loads only when a layer is unpacked)
        self.options = options
        self._ids_checked = False

    def path(self, chain: Digest) -> Path:
        """The tree of the snapshot `chain` (which may not exist)."""
        return self.root / chain.algorithm / chain.hex / TREE

    def get(self, chain: Digest) -> Path | None:
        tree = self.path(chain)
        return tree if tree.is_dir() else None

    def prepare(self, layers: list[tuple[Descriptor, Digest]]) -> list[Path]:
        """Layers bottom first with their diff_ids -> their snapshot trees TOP first (lowerdir order)."""
        lock = self.store.hold_shared()
        try:
            self._check_ids()
            trees: list[Path] = []
            parent: Digest | None = None
            for desc, diff_id in layers:
                chain = chain_id(parent, diff_id)
                tree = self.get(chain) or self._clone_same_layer(diff_id, chain, parent, desc.digest) \
                    or self._unpack(desc, diff_id, chain, parent)
                trees.append(tree)
                parent = chain
        finally:
            lock.release()
        return list(reversed(trees))

    def register(self, upper: Path, diff_id: Digest, parent_chain: Digest | None,
                 layer: Digest | None = None) -> Path:
        """Move a build step's upperdir in as the snapshot of the layer it was just committed as."""
        chain = chain_id(parent_chain, diff_id)
        found = self.get(chain)
        if found is not None:
            return found
        lock = self.store.hold_shared()
        try:
            self._check_ids()
            tmp = self._temp()
            try:
                try:
                    os.rename(upper, tmp / TREE)
                except OSError as err:
                    if err.errno != errno.EXDEV:
                        raise
                    self._copy_across(upper, tmp / TREE)
                return self._publish(tmp, chain, diff_id, parent_chain, layer)
            except BaseException:
                remove_tree(tmp)
                raise
        finally:
            lock.release()

    def create_from(self, stream: Readable, diff_id: Digest, parent: Digest | None, layer: Digest | None,
                    extra: dict[str, bytes] | None = None, reuse: Callable[[Any], str | None] | None = None) -> Path:
        """Unpack a layer tar that comes from elsewhere (a partial pull rebuilds it from pieces); it is
        published only if it hashes to `diff_id`. `extra` files go beside the tree (contents.json);
        `reuse` names files of other snapshots to hard-link (UnpackOptions.reuse)."""
        chain = chain_id(parent, diff_id)
        lock = self.store.hold_shared()
        try:
            self._check_ids()
            tmp = self._temp()
            try:
                (tmp / TREE).mkdir()
                hashed = DigestingReader(stream, diff_id.algorithm)
                self._unpack_stream(hashed, tmp / TREE, replace(self._unpack_options(), reuse=reuse) if reuse else None)
                if hashed.digest() != diff_id:
                    raise LayerError("the rebuilt layer does not match its diff_id") \
                        from DigestMismatch(diff_id, hashed.digest())
                for name, data in (extra or {}).items():
                    (tmp / name).write_bytes(data)
                return self._publish(tmp, chain, diff_id, parent, layer)
            except BaseException:
                remove_tree(tmp)
                raise
        finally:
            lock.release()

    def from_same_layer(self, diff_id: Digest, parent: Digest | None, layer: Digest | None = None) -> Path | None:
        """The snapshot of `diff_id` on `parent`, cloned by hard links from a published snapshot of the same
        layer on another parent (a tree depends only on its layer); None when the store has none."""
        lock = self.store.hold_shared()
        try:
            self._check_ids()
            return self.get(chain_id(parent, diff_id)) \
                or self._clone_same_layer(diff_id, chain_id(parent, diff_id), parent, layer)
        finally:
            lock.release()

    # -- internals

    def _same_layer(self, diff_id: Digest, chain: Digest) -> list[Path]:
        """Published trees of `diff_id` under other chains (snapshot.json says which layer each holds)."""
        found: list[Path] = []
        for other in self.chains():
            if other == chain:
                continue
            tree = self.path(other)
            try:
                info = json.loads((tree.parent / INFO).read_text())
            except (OSError, ValueError):
                continue
            if isinstance(info, dict) and info.get("diffID") == str(diff_id) and tree.is_dir():
                found.append(tree)
        return found

    def _clone_same_layer(self, diff_id: Digest, chain: Digest, parent: Digest | None,
                          layer: Digest | None) -> Path | None:
        """from_same_layer with the shared lock held. The clone is built in a temp dir and published like an
        unpacked tree; a source that changes under the walk (gc'd, set aside) is skipped."""
        from imagetool.store.clone import clone_tree

        for source in self._same_layer(diff_id, chain):
            tmp = self._temp()
            try:
                try:
                    userns.call(clone_tree, str(source), str(tmp / TREE))
                except OSError:
                    remove_tree(tmp)
                    continue
                try:  # partial pulls' index of the tree's contents: the clone holds the same
                    (tmp / CONTENTS).write_bytes((source.parent / CONTENTS).read_bytes())
                except FileNotFoundError:
                    pass
                return self._publish(tmp, chain, diff_id, parent, layer)
            except BaseException:
                remove_tree(tmp)
                raise
        return None


    def _check_ids(self) -> None:
        """Rootless snapshots hold the host ids of one mapping. Ones unpacked under another (a changed
        /etc/subuid, or a version that did not map ids) would show wrong owners: they are moved aside,
        for gc to remove, and unpacked anew. Root has nothing to check."""
        m = userns.mapping()
        if m is None or self._ids_checked:
            return
        with _ids_lock:
            self._check_ids_held(m)

    def _check_ids_held(self, m: userns.Mapping) -> None:
        want = m.text()
        marker = self.root / IDS
        try:
            if marker.read_text() == want:
                self._ids_checked = True
                return
        except FileNotFoundError:
            pass
        self.root.mkdir(parents=True, exist_ok=True)
        for name in os.listdir(self.root):
            if name.startswith((".", TEMP_PREFIX)) or not (self.root / name).is_dir():
                continue
            try:  # a rename: containers running on these trees keep them until they end
                os.rename(self.root / name, self.root / f"{TEMP_PREFIX}stale-{name}-{os.urandom(4).hex()}")
            except FileNotFoundError:
                pass
        tmp = self.root / f".{IDS}.{os.getpid()}"
        tmp.write_text(want)
        os.replace(tmp, marker)
        self._ids_checked = True

    def _temp(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=self.root))

    def _unpack(self, desc: Descriptor, diff_id: Digest, chain: Digest, parent: Digest | None) -> Path:
        from imagetool import compression  # only when a layer is missing: a run of unpacked layers needs none

        tmp = self._temp()
        try:
            tree = tmp / TREE
            tree.mkdir()
            with self.store.open_blob(desc.digest) as raw:
                verified = VerifyingReader(raw, desc.digest, desc.size if desc.size >= 0 else None)
                algorithm, stream = compression.auto_decompressor(verified)  # type: ignore[arg-type]
                hashed = DigestingReader(stream, diff_id.algorithm)
                try:
                    self._unpack_stream(hashed, tree)
                    verified.drain()
                except IntegrityError as err:
                    raise LayerError(f"layer {desc.digest.short}: content does not match its digest") \
                        .citing_cause() from err
                except UnsafeContent as err:
                    raise UnsafeContent(f"layer {desc.digest.short}: {err}") from err
                except (LayerError, LayoutError) as err:
                    raise LayerError(f"layer {desc.digest.short}: {err}") from err
                if hashed.digest() != diff_id:
                    raise LayerError(f"layer {desc.digest.short}: uncompressed content does not match its "
                                     f"diff_id") from DigestMismatch(diff_id, hashed.digest())
            return self._publish(tmp, chain, diff_id, parent, desc.digest)
        except BaseException:
            remove_tree(tmp)
            raise

    def _unpack_options(self) -> UnpackOptions:
        from imagetool.layer.unpack import UnpackOptions

        return self.options or UnpackOptions(whiteouts="overlay")

    def _unpack_stream(self, stream: Readable, tree: Path, options: UnpackOptions | None = None) -> None:
        """Unpack with the owners of the archive: rootless, inside the store's user namespace."""
        from imagetool.layer.unpack import unpack

        options = options or self._unpack_options()
        userns.consume(lambda pipe: unpack(pipe, tree, options), stream)  # type: ignore[arg-type]

    def _publish(self, tmp: Path, chain: Digest, diff_id: Digest, parent: Digest | None,
                 layer: Digest | None) -> Path:
        info = {"chainID": str(chain), "diffID": str(diff_id), "parent": str(parent) if parent else None,
                "layer": str(layer) if layer else None}
        (tmp / INFO).write_text(json.dumps(info, indent=1) + "\n")
        os.chmod(tmp, 0o755)  # mkdtemp made it private; published snapshots are readable lowerdirs
        final = self.path(chain).parent
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(tmp, final)
        except OSError as err:
            if err.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            remove_tree(tmp)  # another process finished the same snapshot first: use theirs
        return final / TREE

    def _copy_across(self, upper: Path, tree: Path) -> None:
        """The upperdir is on another filesystem: carry it over as a layer tar through a pipe-free temp file."""
        from imagetool.layer.diff import write_diff

        with tempfile.TemporaryFile(dir=self.root) as spool:
            write_diff(upper, spool)  # type: ignore[arg-type]
            spool.seek(0)
            tree.mkdir()
            self._unpack_stream(spool, tree)  # type: ignore[arg-type]
        remove_tree(upper)

    # -- gc

    def chains(self) -> list[Digest]:
        found: list[Digest] = []
        if not self.root.is_dir():
            return found
        for alg in os.listdir(self.root):
            if alg.startswith(TEMP_PREFIX) or not (self.root / alg).is_dir():
                continue
            for name in os.listdir(self.root / alg):
                try:
                    found.append(Digest(alg, name))
                except Exception:
                    continue
        return found

    def prune(self, keep: set[Digest], dry_run: bool = False) -> list[Digest]:
        """Remove snapshots not in `keep` and leftovers of killed unpackers; the caller holds the store
        exclusively."""
        removed = [c for c in self.chains() if c not in keep]
        if not dry_run:
            for chain in removed:
                remove_tree(self.path(chain).parent)
            if self.root.is_dir():
                for name in os.listdir(self.root):
                    if name.startswith(TEMP_PREFIX):
                        remove_tree(self.root / name)
        return removed


def used_chains(store: LayoutStore, without: set[Digest] | frozenset[Digest] = frozenset()) -> set[Digest]:
    """Chain IDs of every layer stack of every image a gc root reaches (index.json, containers' images)."""
    from imagetool.store.roots import gc_roots

    keep: set[Digest] = set()
    seen: set[Digest] = set()
    pending = gc_roots(store, without)
    while pending:
        desc = pending.pop()
        if desc.digest in seen or not store.has_blob(desc.digest):
            continue
        seen.add(desc.digest)
        if desc.media_type and not (media.is_index(desc.media_type) or media.is_manifest(desc.media_type)):
            continue
        try:
            doc = parse(store.read_blob(desc.digest), desc.media_type or None)
            if isinstance(doc, Index):
                pending.extend(doc.manifests)
            elif isinstance(doc, Manifest) and store.has_blob(doc.config.digest):
                config = ImageConfig.parse(store.read_blob(doc.config.digest))
                keep.update(chain_ids(list(config.diff_ids)))
        except (ManifestError, ValueError):
            continue
    return keep
