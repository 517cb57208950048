"""The local store: bare names (`localhost/app:1`, `busybox`) in one OCI layout under the data dir.

Names are kept whole as ref.name annotations. A short name (no registry domain) is written as
localhost/NAME (build -t app, tag, commit: as buildah and podman name what they make) and looked
up as localhost/NAME first, then as docker.io/library/NAME (what a pull of it is stored as), the
order of podman's short-name resolution in the local store. Unlike oci:, any manifest type is
kept as it is, so a pulled image keeps its digest. An image can also be named by ID or name@digest.
"""

from __future__ import annotations

import re
from typing import Any, BinaryIO

from imagetool.descriptor import Descriptor
from imagetool.errors import InvalidReference, NotFound
from imagetool.reference import DockerReference, is_short, policy_namespaces
from imagetool.reference import parse as parse_reference
from imagetool.store import default_store_path, images, origins
from imagetool.store.layout import LayoutStore
from imagetool.transports.oci import LayoutDestination, LayoutSource
from imagetool.transports.base import (
    DestinationTraits,
    ImageDestination,
    ImageReference,
    ImageSource,
    ReferenceBase,
    SystemContext,
)

TRANSPORT_NAME = "local"
_ID = re.compile(r"^(?:sha256:)?([a-f0-9]{4,64})$")
LOCAL_TRAITS = DestinationTraits(layer_compression="compress", supports_signatures=True)


class LocalReference(ReferenceBase):
    transport_name = TRANSPORT_NAME

    def __init__(self, text: str, named: DockerReference | None, id_prefix: str | None,
                 local_name: DockerReference | None = None) -> None:
        self.text = text
        #: the name as a registry reads it (docker.io/library/app:latest for `app`): what a pull fetches
        self.named = named
        self.id_prefix = id_prefix
        #: for a short name, localhost/NAME: what writing it names, and the first name a lookup tries
        self.local_name = local_name

    @property
    def write_name(self) -> DockerReference | None:
        """The name an image written under this reference gets (localhost/NAME for a short name)."""
        return self.local_name or self.named

    def candidates(self) -> list[DockerReference]:
        """The names a lookup tries, in order."""
        return [n for n in (self.local_name, self.named) if n is not None]

    def resolve(self, store: LayoutStore) -> Descriptor:
        """The image this reference names in `store`: each candidate name in turn, then the ID prefix."""
        return self.resolve_named(store)[0]

    def resolve_named(self, store: LayoutStore) -> tuple[Descriptor, DockerReference | None]:
        """(descriptor, the candidate name that found it, None when found by ID or digest)."""
        names = self.candidates()
        for name in names:
            try:
                return images.resolve(store, name, None), name
            except NotFound:
                continue
        try:
            return images.resolve(store, None, self.id_prefix), None
        except NotFound:
            pass
        if len(names) > 1:
            raise NotFound(f"image {self.text!r} not found in the local store (tried "
                           f"{', '.join(str(n) for n in names)})")
        return images.resolve(store, names[0] if names else None, self.id_prefix), None  # its own message

    def __str__(self) -> str:
        return self.string_within_transport()

    def string_within_transport(self) -> str:
        return str(self.write_name) if self.write_name else self.text

    def docker_reference(self) -> DockerReference | None:
        return self.named

    def policy_scopes(self) -> list[str]:
        return (policy_namespaces(self.named) if self.named else []) + [""]

    def store(self, ctx: SystemContext, create: bool = False) -> LayoutStore:
        path = default_store_path(ctx.store)
        return LayoutStore.create(path) if create or not path.exists() else LayoutStore.open(path)

    def open_source(self, ctx: SystemContext) -> ImageSource:
        store = self.store(ctx)
        desc, found_as = self.resolve_named(store)
        return _LocalSource(self, store, desc, f"{found_as.name}:" if found_as else None, ctx)

    def open_destination(self, ctx: SystemContext) -> ImageDestination:
        if self.named is None:
            raise InvalidReference(f"cannot write to image ID {self.text!r}: give a name")
        written = self.write_name or self.named
        name = str(written) if written.tag and not written.digest else None
        dest = LayoutDestination(self, self.store(ctx, create=True), name, LOCAL_TRAITS,
                                 expected_digest=self.named.digest, tag_prefix=self.tag_prefix(), keep_dangling=True)
        dest.partial_pulls = True  # type: ignore[attr-defined]  # zstd:chunked layers may go straight to snapshots
        return dest

    def tag_prefix(self) -> str | None:
        """Attachments (`sha256-<hex>.sig`) are named in the image's repository, as in a registry."""
        return f"{self.write_name.name}:" if self.write_name else None

    def delete(self, ctx: SystemContext) -> None:
        from imagetool.store.gc import collect

        store = self.store(ctx)
        desc, found_as = self.resolve_named(store)
        tagged = found_as is not None and found_as.tag and not found_as.digest and desc.ref_name
        images.remove_image(store, desc, str(found_as) if tagged else None)
        collect(store)


def name_for(ref: ImageReference) -> LocalReference:
    """The local-store name an image from another transport is kept under: its docker reference, else
    localhost/<last path part>:<tag> (oci:/p/app:v1 -> localhost/app:v1), as buildah names pulled images."""
    docker = ref.docker_reference()
    if docker is not None:
        return parse(str(docker))
    last = str(ref).split(":", 1)[-1].rstrip("/").rsplit("/", 1)[-1]
    name, _, tag = last.partition(":")
    name = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip(".-_") or "image"
    tag = re.sub(r"[^A-Za-z0-9_.-]+", "-", tag)[:128].lstrip(".-") or "latest"
    return parse(f"localhost/{name}:{tag}")


def parse(text: str) -> LocalReference:
    """A name (normalised, :latest by default), name@digest, or an image ID (12+ hex digits)."""
    match = _ID.match(text)
    if text.startswith("sha256:") or (match and len(match.group(1)) >= 12):
        if not match:
            raise InvalidReference(f"invalid image ID {text!r}")
        return LocalReference(text, None, match.group(1))
    try:
        named = parse_reference(text)
    except InvalidReference:
        if match:
            return LocalReference(text, None, match.group(1))
        raise
    local = parse_reference(f"localhost/{text}").with_default_tag() if is_short(text) else None
    return LocalReference(text, named.with_default_tag(), match.group(1) if match else None, local)


class _LocalSource(LayoutSource):
    """A layer a partial pull left without its blob is fetched from the registry it came from when a
    copy needs the blob itself (store/origins.py); the store keeps it from then on."""

    def __init__(self, reference: LocalReference, store: LayoutStore, top: Descriptor, tag_prefix: str | None,
                 ctx: SystemContext) -> None:
        super().__init__(reference, store, top, tag_prefix)
        self._ctx = ctx

    def get_blob(self, desc: Descriptor) -> BinaryIO:
        if not self.store.has_blob(desc.digest):
            origin = origins.lookup(self.store, desc.digest)
            if origin is not None:
                self._fetch(desc, origin)
        return super().get_blob(desc)

    def _fetch(self, desc: Descriptor, origin: dict[str, Any]) -> None:
        import dataclasses

        from imagetool.transports import docker

        ref = docker.parse(f"//{origin['registry']}/{origin['repo']}@{desc.digest}")
        ctx = dataclasses.replace(self._ctx, tls_verify=origin.get("tls_verify"))
        src = ref.open_source(ctx)
        try:
            with src.get_blob(desc) as raw:
                self.store.put_blob(raw, desc.digest, desc.size)  # verified against the digest and size
        finally:
            src.close()
        origins.forget(self.store, desc.digest)
