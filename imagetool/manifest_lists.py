"""Manifest lists (image indexes) kept in the local store, as `buildah manifest` keeps them.

A list is an OCI index (or a Docker manifest list) named in the local store. Every image
added to it is copied into the store first, so that the list, its instances and their
blobs live together and `push --all` needs nothing but the store; an instance has no name
of its own, the list keeps it from the garbage collector. Every change writes a new index
blob and then moves the list's name to it, so a list is never seen half-changed.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from imagetool import media
from imagetool.copy import CopyOptions, copy_image
from imagetool.descriptor import Descriptor, Platform, best_instance, host_platform
from imagetool.digest import Digest
from imagetool.errors import ImagetoolError, ManifestError, NotFound, UsageError
from imagetool.manifest import ImageConfig, Index, Manifest, parse
from imagetool.store import refs
from imagetool.store.gc import collect
from imagetool.store.layout import LayoutStore
from imagetool.transports.base import ImageReference
from imagetool.transports.local import LocalReference
from imagetool.transports.local import parse as parse_local


@dataclass
class InstanceOptions:
    """What `manifest add` and `annotate` may set on an entry (platform fields override the image's)."""

    os: str | None = None
    arch: str | None = None
    variant: str | None = None
    os_version: str | None = None
    os_features: list[str] | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    def apply(self, entry: Descriptor) -> Descriptor:
        plat = entry.platform or Platform("", "")
        plat = Platform(architecture=self.arch or plat.architecture, os=self.os or plat.os,
                        variant=self.variant if self.variant is not None else plat.variant,
                        os_version=self.os_version if self.os_version is not None else plat.os_version,
                        os_features=tuple(self.os_features) if self.os_features is not None else plat.os_features)
        annotations = {**entry.annotations, **self.annotations}
        return entry.with_(platform=plat if plat.os or plat.architecture else None, annotations=annotations)


def list_name(name: str) -> str:
    """The store name of the list `name` (app-list -> docker.io/library/app-list:latest)."""
    ref = parse_local(name)
    if ref.write_name is None or ref.write_name.digest is not None:
        raise UsageError(f"{name!r}: a manifest list is named NAME[:TAG]")
    return str(ref.write_name)


def load(store: LayoutStore, name: str) -> tuple[Descriptor, Index]:
    """The list `name` names (an error if the name holds a single image)."""
    full = list_name(name)
    try:
        desc = refs.resolve(store, full)
    except NotFound as err:
        raise NotFound(f"no manifest list named {full} in the local store") from err
    doc = parse(store.read_blob(desc.digest), desc.media_type or None)
    if not isinstance(doc, Index):
        raise ManifestError(f"{full} is an image, not a manifest list")
    return desc, doc


def create(store: LayoutStore, name: str, docker: bool = False) -> Descriptor:
    """An empty list named `name` (refused when the name is taken)."""
    full = list_name(name)
    if any(d.ref_name == full for d in store.index().manifests):
        raise UsageError(f"{full} already exists in the local store")
    return _save(store, full, media.DOCKER_MANIFEST_LIST if docker else media.OCI_INDEX, [], {})


def _save(store: LayoutStore, name: str, media_type: str, entries: list[Descriptor],
          annotations: Mapping[str, str]) -> Descriptor:
    index = Index.build(media_type, entries, annotations if media_type == media.OCI_INDEX else None)
    desc = Descriptor(media_type, store.put_bytes(index.raw), len(index.raw))
    refs.set_name(store, name, desc)
    return refs.named(desc, name)


def add(store: LayoutStore, name: str, source: ImageReference, options: InstanceOptions | None = None,
        copy: CopyOptions | None = None, all_instances: bool = False, create_missing: bool = False) -> list[Digest]:
    """Add the image `source` names (any transport; every instance of a list with `all_instances`);
    `create_missing` makes the list first if there is none (build --manifest)."""
    options = options or InstanceOptions()
    try:
        load(store, name)  # the list must exist before anything is copied
    except NotFound:
        if not create_missing:
            raise
        create(store, name)
    wanted = [options.apply(e) for e in _instances(store, source, copy or CopyOptions(), all_instances)]
    digests = {e.digest for e in wanted}
    _, index = load(store, name)
    _save(store, list_name(name), index.media_type, [e for e in index.manifests if e.digest not in digests] + wanted,
          index.annotations)
    return [e.digest for e in wanted]


def _instances(store: LayoutStore, source: ImageReference, copy: CopyOptions, all_instances: bool) \
        -> list[Descriptor]:
    """Entries for `source`, copied into the store (by digest, unnamed, held by a transient name)."""
    if isinstance(source, LocalReference):
        desc = source.resolve(store)
        return _entries(store, desc, all_instances)
    # copied under a name of its own for as long as it takes to enter it in the list
    holder = f"localhost/imagetool-manifest-add-{os.getpid()}:{os.urandom(4).hex()}"
    mode = "all" if all_instances else "system"  # "system": a list's instance for this machine, alone
    result = copy_image(source, parse_local(holder), dataclasses.replace(copy, multi_arch=mode))
    try:
        return _entries(store, Descriptor(result.media_type, result.digest, len(result.manifest)), all_instances)
    finally:
        try:
            refs.remove_name(store, holder)
        except ImagetoolError:
            pass


def _entries(store: LayoutStore, desc: Descriptor, all_instances: bool) -> list[Descriptor]:
    """An image's entry (its platform from its config), or a list's entries: all, or this machine's."""
    doc = parse(store.read_blob(desc.digest), desc.media_type or None)
    if isinstance(doc, Manifest):
        return [Descriptor(doc.media_type, desc.digest, desc.size, platform=_platform_of(store, doc))]
    if all_instances:
        return [d for d in doc.manifests if store.has_blob(d.digest)]
    chosen = best_instance(host_platform(), doc.manifests)
    if chosen is None:
        raise NotFound(f"the list has no instance for {host_platform()}: add them all with --all")
    return [chosen]


def _platform_of(store: LayoutStore, manifest: Manifest) -> Platform | None:
    if not media.is_config(manifest.config.media_type) or not store.has_blob(manifest.config.digest):
        return None
    plat = ImageConfig.parse(store.read_blob(manifest.config.digest)).platform
    return plat if plat.os or plat.architecture else None


def remove(store: LayoutStore, name: str, digest: Digest) -> None:
    _edit_entry(store, name, digest, lambda _entry: None)


def annotate(store: LayoutStore, name: str, digest: Digest, options: InstanceOptions) -> None:
    _edit_entry(store, name, digest, options.apply)


def _edit_entry(store: LayoutStore, name: str, digest: Digest,
                edit: Callable[[Descriptor], Descriptor | None]) -> None:
    """Replace the entry for `digest` with edit(entry), or drop it when that is None."""
    _, index = load(store, name)
    if not any(e.digest == digest for e in index.manifests):
        raise NotFound(f"{digest} is not in the list {name}")
    edited = [edit(e) if e.digest == digest else e for e in index.manifests]
    _save(store, list_name(name), index.media_type, [e for e in edited if e is not None], index.annotations)


def delete(store: LayoutStore, name: str) -> None:
    """Remove the list; its instances go too unless an image name of their own keeps them."""
    load(store, name)
    refs.remove_name(store, list_name(name))
    collect(store)


def instance_digest(store: LayoutStore, name: str, text: str) -> Digest:
    """An entry named by its digest, or by an image in the store whose manifest the list holds."""
    if text.startswith("sha256:") and len(text) == 71:
        return Digest.parse(text)
    ref = parse_local(text)
    return ref.resolve(store).digest
