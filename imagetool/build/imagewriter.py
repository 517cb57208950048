"""Layers + config + history -> config blob, manifest and names in a store.

Blobs first, then the config, then the manifest, then the names: a crash in between
leaves at most unreferenced blobs, never a name pointing at something missing.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from imagetool import media
from imagetool.descriptor import Descriptor, Platform, host_platform
from imagetool.digest import Digest
from imagetool.errors import BuildError, InvalidReference
from imagetool.manifest import ImageConfig, Manifest
from imagetool.store import refs
from imagetool.store.layout import LayoutStore


def rfc3339(ts: float | None) -> str:
    when = datetime.datetime.fromtimestamp(ts, datetime.UTC) if ts is not None \
        else datetime.datetime.now(datetime.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ").replace(".000000Z", "Z")


def default_timestamp() -> int | None:
    """$SOURCE_DATE_EPOCH, the reproducible-builds convention, when set."""
    value = os.environ.get("SOURCE_DATE_EPOCH")
    if value:
        try:
            return int(value)
        except ValueError as err:
            raise BuildError(f"SOURCE_DATE_EPOCH={value!r} is not a number of seconds") from err
    return None


def store_name(name: str | None) -> str | None:
    """A local-store name (`app` -> localhost/app:latest, as buildah names what it builds)."""
    if not name:
        return None
    from imagetool.transports.local import parse as parse_local

    ref = parse_local(name)
    if ref.write_name is None:
        raise InvalidReference(f"{name!r} is an image ID, not a name")
    return str(ref.write_name)


@dataclass
class ImageParts:
    """What a build or import has produced, ready to be committed."""

    config: dict[str, Any]
    layers: list[tuple[Descriptor, Digest]] = field(default_factory=list)   # (blob, diff_id)
    history: list[dict[str, Any]] = field(default_factory=list)
    author: str = ""
    platform: Platform | None = None
    created: str = ""

    def add_history(self, created_by: str, empty_layer: bool, comment: str = "") -> None:
        entry: dict[str, Any] = {"created": self.created or rfc3339(None), "created_by": created_by}
        if comment:
            entry["comment"] = comment
        if empty_layer:
            entry["empty_layer"] = True
        self.history.append(entry)


#: Go's field order for the config section (OCI image-spec, then Docker's container config), so the same
#: settings give the same bytes whatever order the Dockerfile set them in
OCI_ORDER = ("User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir", "Labels", "StopSignal",
             "ArgsEscaped", "Healthcheck", "OnBuild", "Shell")
DOCKER_ORDER = ("Hostname", "Domainname", "User", "ExposedPorts", "Env", "Cmd", "Healthcheck", "ArgsEscaped",
                "Volumes", "WorkingDir", "Entrypoint", "OnBuild", "Labels", "StopSignal", "Shell")


def ordered(config: dict[str, Any], oci: bool = True) -> dict[str, Any]:
    order = OCI_ORDER if oci else DOCKER_ORDER
    rank = {k: n for n, k in enumerate(order)}
    return dict(sorted(config.items(), key=lambda kv: (rank.get(kv[0], len(order)), kv[0])))


def config_document(parts: ImageParts, oci: bool = True) -> dict[str, Any]:
    plat = parts.platform or host_platform()
    doc: dict[str, Any] = {"created": parts.created or rfc3339(None), "architecture": plat.architecture,
                           "os": plat.os}
    if plat.variant:
        doc["variant"] = plat.variant
    if parts.author:
        doc["author"] = parts.author
    doc["config"] = ordered(parts.config, oci)
    doc["rootfs"] = {"type": "layers", "diff_ids": [str(d) for _, d in parts.layers]}
    doc["history"] = parts.history
    return doc


def commit(store: LayoutStore, parts: ImageParts, names: Sequence[str] = (), oci: bool = True,
           annotations: dict[str, str] | None = None) -> Descriptor:
    """Write config and manifest (layer blobs must already be in `store`) and point `names` at the image."""
    ref_names = [n for n in (store_name(name) for name in names) if n]
    for layer, _ in parts.layers:
        if store.blob_size(layer.digest) != layer.size:
            raise BuildError(f"layer {layer.digest} is not in the store")
    config = ImageConfig.build(config_document(parts, oci))
    cfg = Descriptor(media.OCI_CONFIG if oci else media.DOCKER_CONFIG, store.put_bytes(config.raw),
                     len(config.raw))
    layers = [d.with_(media_type=media.convert_type(d.media_type, oci)) for d, _ in parts.layers]
    manifest = Manifest.build(media.OCI_MANIFEST if oci else media.DOCKER_MANIFEST, cfg, layers,
                              annotations if oci else None)
    desc = Descriptor(manifest.media_type, store.put_bytes(manifest.raw), len(manifest.raw))
    if not ref_names:
        refs.set_name(store, None, desc)
    for name in ref_names:
        refs.set_name(store, name, desc, keep_dangling=True)  # the image the name leaves stays, dangling
    return refs.named(desc, ref_names[0]) if ref_names else desc
