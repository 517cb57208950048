"""FROM and COPY --from images: the local store first, then a pull through the copy pipeline.

The resolved image brings its config, manifest digest and layers; its layers as
directories (what COPY looks into and RUN mounts) come from an `unpack` hook, which the
store's snapshots provide: each layer unpacked once, overlay whiteouts, bottom first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from imagetool.copy import CopyOptions, copy_image
from imagetool.copy.multiple import choose_instance, get_instance
from imagetool.copy.options import PolicyChecker
from imagetool.descriptor import Descriptor, Platform
from imagetool.digest import Digest
from imagetool.errors import BuildError, ImagetoolError, LayoutError, ManifestError, NotFound
from imagetool.manifest import ImageConfig, Index, Manifest, parse
from imagetool.store.layout import LayoutStore
from imagetool.transports import SystemContext, parse_image_name
from imagetool.transports.local import parse as parse_local

@dataclass
class BaseImage:
    """A FROM image: config document, manifest digest, layers, their directories (bottom first), history."""

    config: dict[str, Any]
    digest: Digest
    layers: list[tuple[Descriptor, Digest]]
    dirs: list[Path]
    history: list[dict[str, Any]]


class BaseResolver(Protocol):
    def resolve(self, image: str, platform: str | None) -> BaseImage: ...


#: (store, [(layer, diff_id)] bottom first) -> one directory per layer, bottom first
Unpack = Callable[[LayoutStore, list[tuple[Descriptor, Digest]]], list[Path]]


def snapshot_unpack(store: LayoutStore, layers: list[tuple[Descriptor, Digest]]) -> list[Path]:
    """The default Unpack: the store's snapshots (each layer unpacked once, verified, overlay whiteouts).

    SnapshotStore.prepare answers in lowerdir order (top first); this hook answers bottom first.
    """
    from imagetool.runtime.owners import check_layers
    from imagetool.store.snapshots import SnapshotStore

    check_layers(store, layers)
    return list(reversed(SnapshotStore(store).prepare(layers)))


def snapshot_register(store: LayoutStore, upper: Path, diff_id: Digest, parent: Digest | None,
                      layer: Digest) -> Path:
    """The default Register: a step's upperdir becomes the snapshot of the layer made from it."""
    from imagetool.store.snapshots import SnapshotStore

    return SnapshotStore(store).register(upper, diff_id, parent, layer)


#: (store, upperdir, diff_id, parent chain ID, layer digest) -> the directory standing for that layer now
Register = Callable[[LayoutStore, Path, Digest, "Digest | None", Digest], Path]


class StoreResolver:
    """Resolves image names for a build against the local store, pulling what is missing."""

    def __init__(self, store: LayoutStore, ctx: SystemContext, unpack: Unpack | None = None,
                 pull: str = "missing", policy: PolicyChecker | None = None,
                 output: Callable[[str], None] | None = None) -> None:
        self.store = store
        self.ctx = ctx
        self.unpack = unpack
        self.pull = pull            # "missing", "always" or "never", as buildah's --pull
        self.policy = policy
        self.output = output
        self._seen: dict[tuple[str, str | None], BaseImage] = {}

    def resolve(self, image: str, platform: str | None) -> BaseImage:
        key = (image, platform)
        if key not in self._seen:
            self._seen[key] = self._resolve(image, platform)
        return self._seen[key]

    def _resolve(self, image: str, platform: str | None) -> BaseImage:
        ref = parse_local(image)
        ctx = self.ctx
        if platform:
            p = Platform.parse(platform)
            ctx = dataclasses.replace(ctx, override_os=p.os, override_arch=p.architecture,
                                      override_variant=p.variant or None)
        found = None if self.pull == "always" else self._open(ref, ctx)
        if found is None:
            if self.pull == "never":
                raise BuildError(f"base image {image!r} is not in the local store (and pulling is off)")
            self._pull(image, ref, ctx)
            found = self._open(ref, ctx)
            if found is None:
                raise BuildError(f"base image {image!r}: pulled, yet not in the local store")
        manifest, digest = found
        config = ImageConfig.parse(self.store.read_blob(manifest.config.digest))
        # reading .config checks Env, Cmd, ...: a mistyped field is refused here, in one line
        diff_ids, history, _ = config.diff_ids, config.history, config.config
        if len(diff_ids) != len(manifest.layers):
            raise ManifestError(f"base image {image!r}: {len(manifest.layers)} layers but "
                                f"{len(diff_ids)} diff_ids")
        layers = list(zip(manifest.layers, diff_ids, strict=True))
        if self.unpack is None:
            raise BuildError(f"FROM {image}: building on an image needs the layer snapshots of the runtime, "
                             f"which this build has no access to")
        dirs = self.unpack(self.store, layers)
        return BaseImage(dict(config.doc), digest, layers, dirs, history)

    def _open(self, ref, ctx: SystemContext) -> tuple[Manifest, Digest] | None:  # type: ignore[no-untyped-def]
        try:
            src = ref.open_source(ctx)
        except (NotFound, LayoutError):
            return None
        try:
            raw, mt = src.get_manifest()
            parsed = parse(raw, mt)
            if isinstance(parsed, Index):
                desc = choose_instance(parsed, ctx)
                raw, mt = get_instance(src, desc)
                parsed = parse(raw, mt)
            if not isinstance(parsed, Manifest):
                raise ManifestError("not an image manifest")
            return parsed, Digest.of(raw)
        finally:
            src.close()

    def _pull(self, image: str, ref, ctx: SystemContext) -> None:  # type: ignore[no-untyped-def]
        if self.output:
            self.output(f"Trying to pull {ref}...")
        try:
            source = parse_image_name(f"docker://{ref}")
            copy_image(source, ref, CopyOptions(src_ctx=ctx, dest_ctx=ctx, policy=self.policy))
        except ImagetoolError as err:
            raise BuildError(f"base image {image!r} is not in the local store and pulling it failed") from err
        except ImportError:
            raise BuildError(f"base image {image!r} is not in the local store, and this imagetool cannot "
                             f"pull from registries") from None
