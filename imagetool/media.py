"""Media-type constants and predicates: the one place that knows the strings."""

from __future__ import annotations

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = OCI_LAYER + "+gzip"
OCI_LAYER_ZSTD = OCI_LAYER + "+zstd"
OCI_LAYER_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDIST_GZIP = OCI_LAYER_NONDIST + "+gzip"
OCI_LAYER_NONDIST_ZSTD = OCI_LAYER_NONDIST + "+zstd"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_ZSTD = "application/vnd.docker.image.rootfs.diff.tar.zstd"
DOCKER_FOREIGN_LAYER_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
#: what a client asks a registry for, most preferred first
ACCEPT = (OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_MANIFEST_LIST)

_OCI_LAYERS = {
    OCI_LAYER: None, OCI_LAYER_GZIP: "gzip", OCI_LAYER_ZSTD: "zstd",
    OCI_LAYER_NONDIST: None, OCI_LAYER_NONDIST_GZIP: "gzip", OCI_LAYER_NONDIST_ZSTD: "zstd",
}
_DOCKER_LAYERS = {
    DOCKER_LAYER: None, DOCKER_LAYER_GZIP: "gzip", DOCKER_LAYER_ZSTD: "zstd",
    DOCKER_FOREIGN_LAYER_GZIP: "gzip",
}


def is_index(mt: str | None) -> bool:
    return mt in INDEX_TYPES


def is_manifest(mt: str | None) -> bool:
    return mt in MANIFEST_TYPES


def is_schema1(mt: str | None) -> bool:
    return mt in (DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED)


def is_config(mt: str | None) -> bool:
    return mt in (OCI_CONFIG, DOCKER_CONFIG)


def is_layer(mt: str | None) -> bool:
    return mt in _OCI_LAYERS or mt in _DOCKER_LAYERS


def is_oci(mt: str | None) -> bool:
    return bool(mt) and mt.startswith("application/vnd.oci.")  # type: ignore[union-attr]


def layer_compression(mt: str | None) -> str | None:
    """'gzip', 'zstd' or None for an uncompressed (or unknown) layer type."""
    if mt in _OCI_LAYERS:
        return _OCI_LAYERS[mt]
    return _DOCKER_LAYERS.get(mt or "")


def layer_type(oci: bool, compression: str | None, nondistributable: bool = False) -> str:
    """The layer media type for a format and compression."""
    if oci:
        base = OCI_LAYER_NONDIST if nondistributable else OCI_LAYER
        return base + {None: "", "gzip": "+gzip", "zstd": "+zstd"}[compression]
    if nondistributable and compression == "gzip":
        return DOCKER_FOREIGN_LAYER_GZIP
    return {None: DOCKER_LAYER, "gzip": DOCKER_LAYER_GZIP, "zstd": DOCKER_LAYER_ZSTD}[compression]


def is_nondistributable(mt: str | None) -> bool:
    return mt in (OCI_LAYER_NONDIST, OCI_LAYER_NONDIST_GZIP, OCI_LAYER_NONDIST_ZSTD, DOCKER_FOREIGN_LAYER_GZIP)


def convert_type(mt: str, to_oci: bool) -> str:
    """The equivalent media type in the other format; unchanged when there is none."""
    if is_layer(mt):
        return layer_type(to_oci, layer_compression(mt), is_nondistributable(mt))
    if is_config(mt):
        return OCI_CONFIG if to_oci else DOCKER_CONFIG
    if is_manifest(mt):
        return OCI_MANIFEST if to_oci else DOCKER_MANIFEST
    if is_index(mt):
        return OCI_INDEX if to_oci else DOCKER_MANIFEST_LIST
    return mt
