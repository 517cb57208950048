"""What copy, inspect and build all read from a source: the instance of an index for this system, and the config.

Kept apart from the copy pipeline so that `inspect` (and a build resolving its base) loads neither the
blob pipeline nor a thread pool.
"""

from __future__ import annotations

from imagetool import media
from imagetool.descriptor import Descriptor, best_instance, host_platform
from imagetool.digest import Digest
from imagetool.errors import DigestMismatch, NotFound
from imagetool.manifest import ImageConfig, Index, Manifest
from imagetool.transports.base import ImageSource, SystemContext

CONFIG_MAX = 32 << 20


def choose_instance(index: Index, ctx: SystemContext) -> Descriptor:
    want = host_platform(ctx.override_os, ctx.override_arch, ctx.override_variant)
    chosen = best_instance(want, [d for d in index.manifests if media.is_manifest(d.media_type)])
    if chosen is not None:
        return chosen
    offered = ", ".join(str(d.platform) for d in index.manifests if d.platform) or "none"
    # containers/image's words (scripts match them), then what the index offers; the image exists, so not exit 2
    kind = "image index" if index.media_type == media.OCI_INDEX else "manifest list"
    raise NotFound(f'no image found in {kind} for architecture "{want.architecture}", variant '
                   f'"{want.variant or ""}", OS "{want.os}" (it has: {offered})')


def get_instance(src: ImageSource, desc: Descriptor) -> tuple[bytes, str]:
    """An instance manifest, checked against the digest the index gives for it."""
    raw, mt = src.get_manifest(desc.digest)
    actual = Digest.of(raw, desc.digest.algorithm)
    if actual != desc.digest:
        raise DigestMismatch(desc.digest, actual)
    return raw, desc.media_type or mt


def read_config(src: ImageSource, manifest: Manifest) -> ImageConfig | None:
    """The verified image config, or None for artifacts whose config is not an image config."""
    if not media.is_config(manifest.config.media_type) or manifest.config.size > CONFIG_MAX:
        return None
    with src.get_blob(manifest.config) as f:
        raw = f.read(manifest.config.size + 1)
    if Digest.of(raw, manifest.config.digest.algorithm) != manifest.config.digest or \
            len(raw) != manifest.config.size:
        raise DigestMismatch(manifest.config.digest, Digest.of(raw))
    return ImageConfig.parse(raw)
