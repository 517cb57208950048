"""Copy one image: its layers and its config in a bounded pool, then the manifest and signatures."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

from imagetool import media
from imagetool.copy.blob import BlobPlan, CopiedBlob, copy_blob
from imagetool.copy.instances import CONFIG_MAX as CONFIG_MAX  # re-exported: it was defined here
from imagetool.copy.instances import read_config
from imagetool.copy.manifest import choose_type, layer_plans
from imagetool.copy.options import CopyOptions
from imagetool.copy.progress import Progress
from imagetool.descriptor import Descriptor
from imagetool.digest import Digest
from imagetool.errors import ImagetoolError, SignatureError, Unsupported, UnsupportedManifest
from imagetool.manifest import ImageConfig, Manifest, parse_manifest
from imagetool.memory import tune_for_streaming
from imagetool.transports.base import ImageDestination, ImageReference, ImageSource


@dataclass(frozen=True)
class CopiedManifest:
    """The manifest a copy wrote, as written, with the image config it names."""

    raw: bytes
    media_type: str
    config: ImageConfig | None = None

    @property
    def digest(self) -> Digest:
        return Digest.of(self.raw)

    def descriptor(self, like: Descriptor | None = None) -> Descriptor:
        desc = Descriptor(self.media_type, self.digest, len(self.raw))
        if like is not None:
            desc = desc.with_(platform=like.platform, annotations=like.annotations)
        return desc


def partial_chains(manifest: Manifest, config: ImageConfig | None) \
        -> tuple[list[Digest | None], list[Digest | None]]:
    """Each layer's diff_id and its parent's chain ID, for partial pulls of zstd:chunked layers (Nones when
    no layer is one, or the config lacks them)."""
    n = len(manifest.layers)
    if config is None or len(config.diff_ids) != n or not any(_chunked(layer) for layer in manifest.layers):
        return [None] * n, [None] * n
    from imagetool.store.snapshots import chain_ids

    diff_ids = list(config.diff_ids)
    return diff_ids, [None, *chain_ids(diff_ids)[:-1]]  # type: ignore[return-value]


def _chunked(layer: Descriptor) -> bool:
    return "io.github.containers.zstd-chunked.manifest-checksum" in layer.annotations


def _copy_layer(src: ImageSource, dst: ImageDestination, layer: Descriptor, plan: BlobPlan, diff_id: Digest | None,
                parent: Digest | None, progress: Progress | None) -> CopiedBlob:
    if diff_id is not None and _chunked(layer):
        from imagetool.copy import partial  # only for zstd:chunked layers: the rest of copy never loads it

        return partial.copy_layer(src, dst, layer, plan, diff_id, parent, progress)  # type: ignore[no-any-return]
    return copy_blob(src, dst, layer, plan, progress=progress)


def _rewrites_side_by_side(plans: list[BlobPlan], workers: int) -> contextlib.AbstractContextManager[None]:
    """Layers recompressed to zstd at once share the CPUs among their compressor threads from the start."""
    streams = min(sum(p.rewrites and p.compression == "zstd" for p in plans), workers,
                  len(os.sched_getaffinity(0)))  # the rewrite slots of copy/blob.py
    if streams < 2:
        return contextlib.nullcontext()
    from imagetool.parallel_compress import side_by_side

    return side_by_side(streams)


def copy_single(src: ImageSource, dst: ImageDestination, dst_ref: ImageReference, raw: bytes, mt: str,
                options: CopyOptions, instance: Digest | None = None, *, top_level: bool = True) \
        -> CopiedManifest:
    """Copy the image whose manifest is `raw`; `instance` is its digest when it sits in an index."""
    manifest = parse_manifest(raw, mt)
    # a source that keeps layers otherwise than as the manifest's blobs (containers-storage) offers them anew
    offered = getattr(src, "layers_for_copy", None)
    if offered is not None:
        manifest = manifest.with_layers(offered(manifest))
    plans = layer_plans(manifest.layers, [], dst.traits, options)
    # the config's diff_ids matter only to layers rewritten or zstd:chunked: a copy keeping every layer as it is
    # reads the config only as a blob to copy, and not at all when the destination has it (as skopeo does)
    as_they_are = not any(p.rewrites for p in plans) and not any(_chunked(layer) for layer in manifest.layers)
    config = None
    if not as_they_are:
        config = read_config(src, manifest)
        plans = layer_plans(manifest.layers, config.diff_ids if config else [], dst.traits, options)
    needs_oci = any(p.rewrites and p.compression in ("zstd", "zstd:chunked") for p in plans)
    target = choose_type(manifest.media_type, dst.traits, options.format, needs_oci=needs_oci)
    if target == media.DOCKER_MANIFEST and any(
            not p.rewrites and media.layer_compression(layer.media_type) == "zstd"
            for layer, p in zip(manifest.layers, plans, strict=True)):
        # refused before any blob is written, so the destination is left as it was
        raise UnsupportedManifest("zstd-compressed layers have no Docker schema 2 media type "
                                  "(use --dest-compress-format gzip, or --format oci)")
    if any(p.rewrites for p in plans) or target != manifest.media_type:
        if options.preserve_digests:
            raise Unsupported("cannot preserve digests: the destination needs the image converted "
                              f"({manifest.media_type} -> {target}"
                              f"{', layers recompressed' if any(p.rewrites for p in plans) else ''})")
    progress = options.progress

    # -- step: layers, in a bounded pool (config first for destinations that need it)
    if dst.traits.needs_config_first:
        copy_blob(src, dst, manifest.config, kind="config", progress=progress, is_config=True)
    if as_they_are and _all_held(dst, manifest):
        # -- a destination known to hold every blob (a no-op copy, another tag): each is skipped here, no pool
        results = [_copy_layer(src, dst, layer, plan, None, None, progress)
                   for layer, plan in zip(manifest.layers, plans, strict=True)]
        if not dst.traits.needs_config_first:
            results.append(copy_blob(src, dst, manifest.config, kind="config", progress=progress, is_config=True))
    else:
        results = _copy_in_pool(src, dst, manifest, config, plans, options)
    layers = [r.desc for r in results[:len(manifest.layers)]]

    # -- step: manifest (the source bytes when nothing changed)
    out = manifest if layers == list(manifest.layers) else manifest.with_layers(layers)
    if target != out.media_type:
        out = out.convert(target == media.OCI_MANIFEST)
    if progress:
        progress.line("Writing manifest to image destination")
    dst.put_manifest(out.raw, out.media_type, None if top_level else out.digest)

    # -- step: signatures
    copy_signatures(src, dst, dst_ref, raw, out.raw, options, instance, None if top_level else out.digest)
    return CopiedManifest(out.raw, out.media_type, config)


def _all_held(dst: ImageDestination, manifest: Manifest) -> bool:
    """Whether the destination knows, without a request, that it holds every blob of `manifest`."""
    held = getattr(dst, "holds_blob", None)  # transports/docker.py: blobs this process saw in its repository
    return held is not None and all(held(desc) for desc in (*manifest.layers, manifest.config))


def _copy_in_pool(src: ImageSource, dst: ImageDestination, manifest: Manifest, config: ImageConfig | None,
                  plans: list[BlobPlan], options: CopyOptions) -> list[CopiedBlob]:
    from concurrent.futures import ThreadPoolExecutor  # with logging: not for inspect, which reads configs here

    progress = options.progress
    workers = max(1, options.max_parallel if dst.traits.thread_safe_put_blob else 1)
    tune_for_streaming()
    with _rewrites_side_by_side(plans, workers), ThreadPoolExecutor(max_workers=workers) as pool:
        diff_ids, chains = partial_chains(manifest, config)
        futures = [pool.submit(_copy_layer, src, dst, layer, plan, diff_ids[i], chains[i], progress)
                   for i, (layer, plan) in enumerate(zip(manifest.layers, plans, strict=True))]
        # -- step: config, queued behind the layers (one worker: after them, as before; several: beside them,
        # so the manifest waits for the slowest layer and not for a config copied after it)
        if not dst.traits.needs_config_first:
            futures.append(pool.submit(copy_blob, src, dst, manifest.config, kind="config", progress=progress,
                                       is_config=True))
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def copy_signatures(src: ImageSource, dst: ImageDestination, dst_ref: ImageReference, src_raw: bytes,
                    out_raw: bytes, options: CopyOptions, src_instance: Digest | None,
                    dst_instance: Digest | None) -> None:
    """Carry existing signatures (refusing to invalidate them) and add new ones."""
    existing = [] if options.remove_signatures else src.get_signatures(src_instance)
    if existing and out_raw != src_raw:
        raise SignatureError("copying would change the manifest and invalidate its signatures "
                             "(use --remove-signatures)")
    if existing and not dst.traits.supports_signatures:
        raise Unsupported(f"{dst_ref.transport_name}: the destination cannot store signatures "
                          "(use --remove-signatures)")
    new: list[bytes] = []
    referred: list[bytes] = []  # signatures the signer stores as OCI 1.1 referrers of the image
    if options.signers:
        identity = options.sign_identity or dst_ref.docker_reference()
        if identity is None:
            raise SignatureError(f"cannot sign {dst_ref}: it has no docker reference (use --sign-identity)")
        for signer in options.signers:
            try:
                (referred if getattr(signer, "as_referrer", False) else new).append(signer.sign(out_raw, identity))
            except ImagetoolError:
                raise
            except Exception as err:  # noqa: BLE001 - signer back-ends raise their own kinds
                raise SignatureError(f"signing failed: {err}").citing_cause() from err
    if existing or new:
        if options.progress:
            options.progress.line("Storing signatures")
        dst.put_signatures(existing + new, dst_instance)
    if referred:
        put_referrers = getattr(dst, "put_referrer_signatures", None)
        if put_referrers is None:
            raise Unsupported(f"{dst_ref.transport_name}: the destination cannot store signatures as referrers")
        put_referrers(out_raw, referred)

