"""What gc keeps: the images index.json lists, and the images containers were made from.

A container (kept or running) lives in <store>/containers/<name>/ with a config.json naming
its image's manifest digest. Every such directory is a root whatever its state, so a
re-tag, `delete` or `prune` never takes away the image, the layers or the snapshots (the
overlay lower dirs) a container uses; they go once the container is removed. The runtime
registers a container while holding the store's use lock, so gc never sees it half made.
"""

from __future__ import annotations

import json
from pathlib import Path

from imagetool.descriptor import Descriptor
from imagetool.digest import Digest
from imagetool.errors import InvalidDigest
from imagetool.store.layout import LayoutStore

CONTAINERS = "containers"
CONTAINER_CONFIG = "config.json"
#: the key of config.json holding the image's manifest digest
IMAGE_KEY = "image"


def containers_root(store: LayoutStore) -> Path:
    return Path(store.root) / CONTAINERS


def held_images(store: LayoutStore) -> dict[Digest, list[str]]:
    """Manifest digest -> names of the containers made from it (a directory being removed holds nothing)."""
    held: dict[Digest, list[str]] = {}
    root = containers_root(store)
    for cdir in sorted(root.iterdir()) if root.is_dir() else []:
        if cdir.name.startswith("."):
            continue
        try:
            digest = Digest.parse(json.loads((cdir / CONTAINER_CONFIG).read_text())[IMAGE_KEY])
        except (OSError, ValueError, KeyError, TypeError, InvalidDigest):
            continue
        held.setdefault(digest, []).append(cdir.name)
    return held


def gc_roots(store: LayoutStore, without: set[Digest] | frozenset[Digest] = frozenset()) -> list[Descriptor]:
    """index.json's entries (but those in `without`), then the containers' images (their media type is
    read from the blob)."""
    entries = [d for d in store.index().manifests if d.digest not in without]
    listed = {d.digest for d in entries}
    return entries + [Descriptor("", digest, -1) for digest in held_images(store) if digest not in listed]
