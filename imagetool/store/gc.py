"""Garbage collection: keep what the roots reach (index.json and containers' images, see roots.py), remove
other blobs, snapshots, and temp files whose writer is gone."""

from __future__ import annotations

from dataclasses import dataclass, field

from imagetool import media
from imagetool.digest import Digest
from imagetool.errors import ManifestError
from imagetool.manifest import Index, Manifest, parse
from imagetool.store.layout import LayoutStore
from imagetool.store.roots import gc_roots


@dataclass
class GCResult:
    removed: list[Digest]
    freed_bytes: int
    #: chain IDs of the unpacked layer snapshots removed (no image uses their layer stack)
    snapshots_removed: list[Digest] = field(default_factory=list)


def reachable(store: LayoutStore, without: set[Digest] | frozenset[Digest] = frozenset()) -> set[Digest]:
    """Every blob a root reaches; index.json entries whose digest is in `without` are no roots."""
    keep: set[Digest] = set()
    pending = gc_roots(store, without)
    while pending:
        desc = pending.pop()
        if desc.digest in keep:
            continue
        keep.add(desc.digest)
        if not (media.is_index(desc.media_type) or media.is_manifest(desc.media_type)
                or not desc.media_type) or not store.has_blob(desc.digest):
            continue
        try:
            doc = parse(store.read_blob(desc.digest), desc.media_type or None)
        except ManifestError:
            continue
        if isinstance(doc, Index):
            pending.extend(doc.manifests)
        elif isinstance(doc, Manifest):
            keep.add(doc.config.digest)
            keep.update(layer.digest for layer in doc.layers)
    return keep


def collect(store: LayoutStore, dry_run: bool = False,
            without: set[Digest] | frozenset[Digest] = frozenset()) -> GCResult:
    """Remove unreachable blobs; waits until no other process is writing into the store.

    `without` names index.json entries to count as gone (what a dry run of a prune would untag)."""
    removed: list[Digest] = []
    freed = 0
    with store.exclusive():
        keep = reachable(store, without)
        for digest in list(store.iter_blobs()):
            if digest in keep:
                continue
            freed += store.blob_size(digest) or 0
            removed.append(digest)
            if not dry_run:
                store.delete_blob(digest)
        if not dry_run:
            store.sweep_temp_files()
        from imagetool.store.snapshots import SnapshotStore, used_chains

        dropped = SnapshotStore(store).prune(used_chains(store, without), dry_run)
    return GCResult(removed, freed, dropped)
