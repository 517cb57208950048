"""The local store: bare names (`localhost/app:1`, `busybox`) in one OCI layout under the data dir.

Names are normalised like docker references (busybox -> docker.io/library/busybox:latest) and
kept whole as ref.name annotations. Unlike oci:, any manifest type is kept as it is, so a
pulled image keeps its digest. An image can also be named by ID (its config digest, or a
prefix of at least 4 hex digits) or by name@digest.
"""

from __future__ import annotations

import re

from imagetool import media
from imagetool.descriptor import Descriptor
from imagetool.digest import Digest
from imagetool.errors import InvalidReference, ManifestError, ManifestUnknown
from imagetool.manifest import Manifest, guess_media_type
from imagetool.manifest import parse as parse_manifest
from imagetool.reference import DockerReference, policy_namespaces
from imagetool.reference import parse as parse_reference
from imagetool.store import default_store_path, refs
from imagetool.store.gc import collect
from imagetool.store.layout import LayoutStore
from imagetool.transports.base import (
    DestinationTraits,
    ImageDestination,
    ImageSource,
    ReferenceBase,
    SystemContext,
)
from imagetool.transports.oci import LayoutDestination, LayoutSource

TRANSPORT_NAME = "local"
_ID = re.compile(r"^(?:sha256:)?([a-f0-9]{4,64})$")
LOCAL_TRAITS = DestinationTraits()


def image_id(store: LayoutStore, desc: Descriptor) -> Digest:
    """An image's ID: its config digest (the index digest for a multi-platform image)."""
    if media.is_index(desc.media_type):
        return desc.digest
    try:
        m = parse_manifest(store.read_blob(desc.digest), desc.media_type or None)
    except (ManifestError, OSError):
        return desc.digest
    return m.config.digest if isinstance(m, Manifest) else desc.digest


def find_by_id(store: LayoutStore, prefix: str) -> Descriptor | None:
    hexpart = prefix.removeprefix("sha256:")
    found = {}
    for desc in store.index().manifests:
        iid = image_id(store, desc)
        if iid.hex.startswith(hexpart) or desc.digest.hex.startswith(hexpart):
            found[desc.digest] = desc
    if len(found) > 1:
        raise InvalidReference(f"image ID {prefix!r} is ambiguous")
    return next(iter(found.values()), None)


class LocalReference(ReferenceBase):
    transport_name = TRANSPORT_NAME

    def __init__(self, text: str, named: DockerReference | None, id_prefix: str | None) -> None:
        self.text = text
        self.named = named
        self.id_prefix = id_prefix

    def __str__(self) -> str:
        return self.string_within_transport()

    def string_within_transport(self) -> str:
        return str(self.named) if self.named else self.text

    def docker_reference(self) -> DockerReference | None:
        return self.named

    def policy_scopes(self) -> list[str]:
        return (policy_namespaces(self.named) if self.named else []) + [""]

    def store(self, ctx: SystemContext, create: bool = False) -> LayoutStore:
        path = default_store_path(ctx.store)
        return LayoutStore.create(path) if create or not path.exists() else LayoutStore.open(path)

    def _resolve(self, store: LayoutStore) -> Descriptor:
        if self.named is not None:
            if self.named.tag:
                name = str(self.named.with_tag(self.named.tag))
                if self.named.digest is None:
                    return refs.resolve(store, name)
            for desc in store.index().manifests:
                if self.named.digest and desc.digest == self.named.digest and \
                        (desc.ref_name or "").startswith(self.named.name + ":"):
                    return desc
            if self.named.digest and store.has_blob(self.named.digest):
                raw = store.read_blob(self.named.digest)
                return Descriptor(guess_media_type(raw), self.named.digest, len(raw))
        if self.id_prefix is not None:
            found = find_by_id(store, self.id_prefix)
            if found is not None:
                return found
        raise ManifestUnknown(f"image {self.text!r} not found in the local store")

    def open_source(self, ctx: SystemContext) -> ImageSource:
        store = self.store(ctx)
        return LayoutSource(self, store, self._resolve(store))

    def open_destination(self, ctx: SystemContext) -> ImageDestination:
        if self.named is None:
            raise InvalidReference(f"cannot write to image ID {self.text!r}: give a name")
        name = str(self.named.with_tag(self.named.tag)) if self.named.tag else None
        return LayoutDestination(self, self.store(ctx, create=True), name, LOCAL_TRAITS,
                                 expected_digest=self.named.digest)

    def delete(self, ctx: SystemContext) -> None:
        store = self.store(ctx)
        desc = self._resolve(store)
        if desc.ref_name and self.named is not None and self.named.tag:
            refs.remove_name(store, desc.ref_name)
        else:
            refs.remove_digest(store, desc.digest)
        collect(store)


def parse(text: str) -> LocalReference:
    match = _ID.match(text)
    if match and len(match.group(1)) >= 12 or text.startswith("sha256:"):
        if not match:
            raise InvalidReference(f"invalid image ID {text!r}")
        return LocalReference(text, None, match.group(1))
    try:
        named = parse_reference(text)
    except InvalidReference:
        if match:
            return LocalReference(text, None, match.group(1))
        raise
    if named.tag is None and named.digest is None:
        named = named.with_default_tag()
    return LocalReference(text, named, match.group(1) if match else None)
