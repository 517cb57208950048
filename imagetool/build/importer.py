"""`import_rootfs`: a single-layer image from a root filesystem directory or tarball (like `podman import`).

The layer is streamed (tar -> gzip -> store) and deterministic: a directory is written
sorted with numeric owners, a tarball is kept byte for byte. With a timestamp (or
SOURCE_DATE_EPOCH) the config is too, so importing the same input twice gives one digest.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from imagetool import compression, media
from imagetool.build.config import ConfigState, apply_changes
from imagetool.build.layerwriter import copy_tar, tar_directory, write_layer
from imagetool.build.stages import Scope
from imagetool.descriptor import Descriptor, host_platform
from imagetool.errors import BuildError, InvalidReference
from imagetool.manifest import ImageConfig, Manifest
from imagetool.store import default_store_path, refs
from imagetool.store.layout import LayoutStore


def rfc3339(ts: float | None) -> str:
    when = datetime.datetime.fromtimestamp(ts, datetime.UTC) if ts is not None \
        else datetime.datetime.now(datetime.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ").replace(".000000Z", "Z")


def default_timestamp() -> int | None:
    value = os.environ.get("SOURCE_DATE_EPOCH")
    if value:
        try:
            return int(value)
        except ValueError:
            raise BuildError(f"SOURCE_DATE_EPOCH={value!r} is not a number of seconds") from None
    return None


def store_name(name: str | None) -> str | None:
    """A local-store name (`app` -> docker.io/library/app:latest, as the local transport reads it)."""
    if not name:
        return None
    from imagetool.transports.local import parse as parse_local

    ref = parse_local(name)
    if ref.named is None:
        raise InvalidReference(f"{name!r} is an image ID, not a name")
    return str(ref.named)


def _producer(source: Path, timestamp: int | None):  # type: ignore[no-untyped-def]
    if source.is_dir():
        return lambda out: tar_directory(source, out, timestamp)
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
    ref_name = store_name(name)
    if timestamp is None:
        timestamp = default_timestamp()
    state = ConfigState.from_image(None)
    apply_changes(state, list(changes), Scope({}, {}, state.env()))
    store = store or LayoutStore.create(default_store_path())
    produce = _producer(source, timestamp)
    lock = store.hold_shared()
    try:
        layer, diff_id = write_layer(store, produce, layer_compression, oci)
        created = rfc3339(timestamp)
        plat = host_platform()
        doc: dict[str, object] = {"created": created, "architecture": plat.architecture, "os": plat.os}
        if plat.variant:
            doc["variant"] = plat.variant
        if state.author:
            doc["author"] = state.author
        doc["config"] = state.config
        doc["rootfs"] = {"type": "layers", "diff_ids": [str(diff_id)]}
        history: dict[str, object] = {"created": created, "created_by": f"imagetool import {source.name}"}
        if message:
            history["comment"] = message
        doc["history"] = [history]
        config = ImageConfig.build(doc)
        cfg_desc = Descriptor(media.OCI_CONFIG if oci else media.DOCKER_CONFIG, store.put_bytes(config.raw),
                              len(config.raw))
        manifest = Manifest.build(media.OCI_MANIFEST if oci else media.DOCKER_MANIFEST, cfg_desc, [layer])
        desc = Descriptor(manifest.media_type, store.put_bytes(manifest.raw), len(manifest.raw))
        refs.set_name(store, ref_name, desc)
    finally:
        lock.release()
    return refs.named(desc, ref_name) if ref_name else desc
