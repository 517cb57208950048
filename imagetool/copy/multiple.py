"""Copy an index: pick the instance for this system, or copy every instance (several at once) and then the index."""

from __future__ import annotations

import os
from typing import Callable

from imagetool import media
from imagetool.copy.instances import choose_instance, get_instance
from imagetool.copy.manifest import choose_type
from imagetool.copy.options import CopyOptions
from imagetool.copy.single import CopiedManifest, copy_signatures, copy_single
from imagetool.descriptor import Descriptor, platform_matches
from imagetool.digest import Digest
from imagetool.errors import Unsupported
from imagetool.manifest import Index
from imagetool.transports.base import ImageDestination, ImageReference, ImageSource

__all__ = ["choose_instance", "copy_index", "get_instance"]


def copy_index(src: ImageSource, dst: ImageDestination, dst_ref: ImageReference, index: Index,
               options: CopyOptions, *, top_level: bool = True) -> CopiedManifest:
    if not dst.traits.supports_index:
        raise Unsupported(f"{dst_ref.transport_name}: the destination cannot store multi-image indexes "
                          "(copy one image: --multi-arch system)")
    target = choose_type(index.media_type, dst.traits, options.format, index=True)
    entries: list[Descriptor] = []
    if options.multi_arch == "index-only":
        entries = list(index.manifests)
    else:
        wanted = [desc for desc in index.manifests
                  if not options.platforms or any(platform_matches(p, desc.platform) for p in options.platforms)]

        def copy_instance(desc: Descriptor) -> Descriptor:
            raw, mt = get_instance(src, desc)
            if media.is_index(mt):
                copied = copy_index(src, dst, dst_ref, _parse_index(raw, mt), options, top_level=False)
            else:
                copied = copy_single(src, dst, dst_ref, raw, mt, options, desc.digest, top_level=False)
            return copied.descriptor(like=desc)

        entries = _each(copy_instance, wanted, _instance_workers(dst, len(wanted)))
    if entries == list(index.manifests) and target == index.media_type:
        raw_out = index.raw
    else:
        if options.preserve_digests:
            raise Unsupported("cannot preserve digests: the index must be rewritten for the destination")
        raw_out = index.convert(target == media.OCI_INDEX, entries).raw
    if options.progress:
        options.progress.line("Writing manifest list to image destination")
    digest = Digest.of(raw_out)
    dst.put_manifest(raw_out, target, None if top_level else digest)
    copy_signatures(src, dst, dst_ref, index.raw, raw_out, options, None if top_level else index.digest,
                    None if top_level else digest)
    return CopiedManifest(raw_out, target)


def _instance_workers(dst: ImageDestination, count: int) -> int:
    """Platforms are copied at once where the destination takes blobs from several threads."""
    if not dst.traits.thread_safe_put_blob or count < 2:
        return 1
    return min(count, 2 * max(1, len(os.sched_getaffinity(0))))


def _each(fn: Callable[[Descriptor], Descriptor], items: list[Descriptor], workers: int) -> list[Descriptor]:
    """fn over items in a pool of `workers`, results in item order; the first failure (in order) is raised."""
    if workers <= 1:
        return [fn(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor  # with logging: not loaded by what imports choose_instance

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="instance") as pool:
        futures = [pool.submit(fn, item) for item in items]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def _parse_index(raw: bytes, mt: str) -> Index:
    from imagetool.manifest import parse

    parsed = parse(raw, mt)
    assert isinstance(parsed, Index)
    return parsed
