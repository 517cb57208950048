"""Choosing the manifest type a destination gets, and the compression each layer gets."""

from __future__ import annotations

from typing import Sequence

from imagetool import media
from imagetool.copy.blob import KEEP, BlobPlan
from imagetool.copy.options import CopyOptions
from imagetool.descriptor import Descriptor
from imagetool.digest import Digest
from imagetool.errors import UnsupportedManifest
from imagetool.transports.base import DestinationTraits

_FORMAT_TYPES = {"oci": (media.OCI_MANIFEST, media.OCI_INDEX), "v2s2": (media.DOCKER_MANIFEST,
                                                                       media.DOCKER_MANIFEST_LIST)}


def _accepts(traits: DestinationTraits, mt: str) -> bool:
    return not traits.manifest_types or mt in traits.manifest_types


def choose_type(src_type: str, traits: DestinationTraits, requested: str | None, *, index: bool = False,
                needs_oci: bool = False) -> str:
    """The source's type where allowed; else the requested format; else the destination's first choice."""
    pick = 1 if index else 0
    if requested:
        want = _FORMAT_TYPES[requested][pick]
        if needs_oci and want != media.OCI_MANIFEST and not index:
            raise UnsupportedManifest("zstd-compressed layers need an OCI manifest (use --format oci)")
        if not _accepts(traits, want):
            raise UnsupportedManifest(f"the destination cannot store {requested} manifests")
        return want
    if needs_oci and src_type == media.DOCKER_MANIFEST and _accepts(traits, media.OCI_MANIFEST):
        return media.OCI_MANIFEST
    if _accepts(traits, src_type):
        return src_type
    kinds = media.INDEX_TYPES if index else media.MANIFEST_TYPES
    for mt in traits.manifest_types:
        if mt in kinds:
            return mt
    raise UnsupportedManifest(f"the destination cannot store {src_type} nor any equivalent")


def _already(compression: str, layer: Descriptor) -> bool:
    """zstd:chunked is asked for and the zstd layer is zstd:chunked already (the chunked module loads only for a
    copy that asks for a compression)."""
    from imagetool.layer import chunked

    return compression == chunked.NAME and chunked.is_chunked(layer.annotations)


def layer_plans(layers: Sequence[Descriptor], diff_ids: Sequence[Digest], traits: DestinationTraits,
                options: CopyOptions) -> list[BlobPlan]:
    """Keep each layer's bytes unless the destination or the user asks for other compression."""
    plans = []
    for i, layer in enumerate(layers):
        current = media.layer_compression(layer.media_type)
        diff_id = diff_ids[i] if i < len(diff_ids) else None
        if not media.is_layer(layer.media_type):
            plans.append(KEEP)  # artifacts and unknown blobs travel as they are
        elif traits.layer_compression == "decompress" or options.decompress:
            plans.append(BlobPlan("rewrite", None, None, diff_id) if current else KEEP)
        elif options.compression and current == "zstd" and _already(options.compression, layer):
            plans.append(KEEP)  # already zstd:chunked
        elif options.compression and options.compression != current:
            plans.append(BlobPlan("rewrite", options.compression, options.compression_level, diff_id))
        elif current is None and traits.layer_compression == "compress":
            plans.append(BlobPlan("rewrite", options.compression or "gzip", options.compression_level, diff_id))
        else:
            # kept; the level still applies if the layer turns out to be a plain tar typed as compressed
            plans.append(KEEP if options.compression_level is None else BlobPlan(level=options.compression_level))
    return plans
