"""`import_rootfs`: a single-layer image from a root filesystem directory or tarball (like `podman import`).

The layer is streamed (tar -> gzip -> store) and deterministic: a directory is written
sorted with numeric owners, a tarball is kept byte for byte. With a timestamp (or
SOURCE_DATE_EPOCH) the config is too, so importing the same input twice gives one digest.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from imagetool import compression, userns
from imagetool.build.imagewriter import ImageParts, commit, default_timestamp, rfc3339, store_name
from imagetool.build.config import ConfigState, apply_changes
from imagetool.build.layerwriter import Producer, copy_tar, tar_directory, write_layer
from imagetool.build.stages import Scope
from imagetool.descriptor import Descriptor
from imagetool.errors import BuildError
from imagetool.store import default_store_path
from imagetool.store.layout import LayoutStore


def _producer(source: Path, timestamp: int | None) -> Producer:
    if source.is_dir():
        # rootless, read in the store's user namespace: the caller's files are 0:0, as in buildah
        return lambda out: userns.produce(lambda o: tar_directory(source, o, timestamp), out)
    if not source.is_file():
        raise BuildError(f"{source}: no such file or directory")

    def produce(out: BinaryIO) -> None:
        with open(source, "rb") as f:
            _algo, raw = compression.auto_decompressor(f)  # type: ignore[arg-type]
            copy_tar(raw, out)

    return produce


def import_rootfs(source: str | Path, name: str | None = None, changes: Sequence[str] = (), *,
                  store: LayoutStore | None = None, timestamp: int | None = None,
                  layer_compression: str | None = compression.GZIP, oci: bool = True,
                  message: str = "") -> Descriptor:
    """Make a one-layer image in the local store from a directory or a tar(.gz/.zst); returns its entry."""
    source = Path(source)
    store_name(name)  # a bad name fails before anything is written
    if timestamp is None:
        timestamp = default_timestamp()
    state = ConfigState.from_image(None)
    apply_changes(state, list(changes), Scope({}, {}, state.env()))
    store = store or LayoutStore.create(default_store_path())
    produce = _producer(source, timestamp)
    lock = store.hold_shared()
    try:
        layer, diff_id = write_layer(store, produce, layer_compression, oci)
        parts = ImageParts(state.config, [(layer, diff_id)], author=state.author, created=rfc3339(timestamp))
        parts.add_history(f"imagetool import {source.name}", empty_layer=False, comment=message)
        return commit(store, parts, [name] if name else [], oci)
    finally:
        lock.release()
