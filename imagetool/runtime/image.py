"""An image in the local store -> what a container needs: its config and its layers as directories.

Layer directories come from the store's snapshots (each layer unpacked once, shared by
every container and build), top first, ready to be overlay lowerdirs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagetool.descriptor import Descriptor, Platform, best_instance, host_platform
from imagetool.digest import Digest
from imagetool.errors import ContainerError, ManifestError
from imagetool.manifest import ImageConfig, Index, Manifest, parse
from imagetool.store.layout import LayoutStore


@dataclass
class RunnableImage:
    config: ImageConfig
    layers: list[tuple[Descriptor, Digest]]   # bottom first, with diff_ids

    @property
    def run_config(self) -> dict[str, Any]:
        return dict(self.config.config)


def load(store: LayoutStore, desc: Descriptor, platform: Platform | None = None) -> RunnableImage:
    """The manifest (an index's instance for `platform`, default this machine), config and layers of `desc`."""
    doc = parse(store.read_blob(desc.digest), desc.media_type or None)
    if isinstance(doc, Index):
        want = platform or host_platform()
        chosen = best_instance(want, doc.manifests)
        if chosen is None:
            raise ContainerError(f"the image has no instance for {want}")
        doc = parse(store.read_blob(chosen.digest), chosen.media_type or None)
    if not isinstance(doc, Manifest):
        raise ManifestError("not an image manifest")
    config = ImageConfig.parse(store.read_blob(doc.config.digest))
    diff_ids = config.diff_ids
    if len(diff_ids) != len(doc.layers):
        raise ManifestError(f"the config lists {len(diff_ids)} diff_ids for {len(doc.layers)} layers")
    return RunnableImage(config, list(zip(doc.layers, diff_ids, strict=True)))


def layer_dirs(store: LayoutStore, layers: list[tuple[Descriptor, Digest]]) -> list[Path]:
    """Each layer unpacked (once, verified) as a snapshot directory; top first, as overlay wants lowerdirs."""
    from imagetool.runtime.owners import check_layers
    from imagetool.store.snapshots import SnapshotStore

    check_layers(store, layers)
    return SnapshotStore(store).prepare(layers)
