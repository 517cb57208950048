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
from imagetool.copy.instances import choose_instance, get_instance
from imagetool.copy.options import PolicyChecker
from imagetool.descriptor import Descriptor, Platform, platform_matches
from imagetool.digest import Digest
from imagetool.errors import BuildError, ImagetoolError, LayoutError, ManifestError, NotFound
from imagetool.manifest import ImageConfig, Index, Manifest, parse
from imagetool.store.layout import LayoutStore
from imagetool.transports import TRANSPORTS, ImageReference, SystemContext, parse_image_name
from imagetool.transports.local import LocalReference, name_for
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


def local_name(image: str) -> tuple[LocalReference, ImageReference]:
    """(the local-store name FROM `image` is found under, where a pull fetches it from).

    A bare name is looked up as the local store reads it (localhost/NAME, then docker.io/library/NAME)
    and pulled from its registry; `docker://REF` likewise; another transport's image (`oci:DIR:TAG`,
    `oci-archive:`, `docker-archive:`, `dir:`) is copied into the store under the name `pull` gives it."""
    head, sep, rest = image.partition(":")
    if sep and head in TRANSPORTS and head != "local":
        source = parse_image_name(image)
        if head == "docker":
            named = source.docker_reference()
            assert named is not None
            return parse_local(str(named)), source
        return name_for(source), source
    ref = parse_local(image)
    if ref.named is None:  # an image ID: the store's or nothing
        return ref, ref
    return ref, parse_image_name(f"docker://{ref.named}")


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
        ref, source = local_name(image)
        ctx = self.ctx
        if platform:
            p = Platform.parse(platform)
            ctx = dataclasses.replace(ctx, override_os=p.os, override_arch=p.architecture,
                                      override_variant=p.variant or None)
        # another transport's image is copied in every time: the file may have changed since
        fresh = source is not ref and not isinstance(source, LocalReference) \
            and source.transport_name != "docker"
        found = None if self.pull == "always" or fresh else self._open(ref, ctx)
        if found is not None and platform and self._platform_of(found[0]) is not None \
                and not platform_matches(Platform.parse(platform), self._platform_of(found[0])):
            if self.pull == "never":
                self._refuse(image, platform, found[0])
            found = None  # the local image is another platform's: pull the one asked for
        if found is None:
            if self.pull == "never" or source is ref:
                raise BuildError(f"base image {image!r} is not in the local store (and pulling is off)")
            self._pull(image, source, ref, ctx)
            found = self._open(ref, ctx)
            if found is None:
                raise BuildError(f"base image {image!r}: pulled, yet not in the local store")
        manifest, digest = found
        if platform and not platform_matches(Platform.parse(platform), self._platform_of(manifest)):
            self._refuse(image, platform, manifest)
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

    def _platform_of(self, manifest: Manifest) -> Platform | None:
        """The platform an image's config declares (None when it declares none)."""
        doc = ImageConfig.parse(self.store.read_blob(manifest.config.digest)).doc
        if not doc.get("architecture") and not doc.get("os"):
            return None
        return Platform(architecture=str(doc.get("architecture") or ""), os=str(doc.get("os") or ""),
                        variant=str(doc.get("variant") or ""))

    def _refuse(self, image: str, platform: str, manifest: Manifest) -> None:
        """A base image of another platform than the one asked for is not built on: its programs would
        run as the wrong architecture's, and the result would be labelled with a platform it is not."""
        raise BuildError(f"base image {image!r} has no image for {platform} (it is "
                         f"{self._platform_of(manifest) or 'of no declared platform'})")

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

    def _pull(self, image: str, source, ref, ctx: SystemContext) -> None:  # type: ignore[no-untyped-def]
        if self.output:
            self.output(f"Trying to pull {source}...")
        try:
            copy_image(source, ref, CopyOptions(src_ctx=ctx, dest_ctx=ctx, policy=self.policy))
        except ImagetoolError as err:
            raise BuildError(f"base image {image!r} is not in the local store and pulling it failed").citing_cause() \
                from err
        except ImportError as err:
            raise BuildError(f"base image {image!r} is not in the local store, and this imagetool cannot "
                             f"pull from registries") from err
