"""The local store: bare names (`localhost/app:1`, `busybox`) in one OCI layout under the data dir.

Names are normalised like docker references (busybox -> docker.io/library/busybox:latest) and
kept whole as ref.name annotations. Unlike oci:, any manifest type is kept as it is, so a
pulled image keeps its digest. An image can also be named by ID or by name@digest.
"""

from __future__ import annotations

import re

from imagetool.errors import InvalidReference
from imagetool.reference import DockerReference, policy_namespaces
from imagetool.reference import parse as parse_reference
from imagetool.store import default_store_path, images
from imagetool.store.layout import LayoutStore
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

    def open_source(self, ctx: SystemContext) -> ImageSource:
        from imagetool.transports.oci import LayoutSource  # not loaded by `run` of a stored image

        store = self.store(ctx)
        return LayoutSource(self, store, images.resolve(store, self.named, self.id_prefix), self.tag_prefix())

    def open_destination(self, ctx: SystemContext) -> ImageDestination:
        if self.named is None:
            raise InvalidReference(f"cannot write to image ID {self.text!r}: give a name")
        from imagetool.transports.oci import LayoutDestination

        name = str(self.named) if self.named.tag and not self.named.digest else None
        return LayoutDestination(self, self.store(ctx, create=True), name, LOCAL_TRAITS,
                                 expected_digest=self.named.digest, tag_prefix=self.tag_prefix(), keep_dangling=True)

    def tag_prefix(self) -> str | None:
        """Attachments (`sha256-<hex>.sig`) are named in the image's repository, as in a registry."""
        return f"{self.named.name}:" if self.named else None

    def delete(self, ctx: SystemContext) -> None:
        from imagetool.store.gc import collect

        store = self.store(ctx)
        desc = images.resolve(store, self.named, self.id_prefix)
        tagged = self.named is not None and self.named.tag and not self.named.digest
        images.remove_image(store, desc, str(self.named) if tagged else None)
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
    return LocalReference(text, named.with_default_tag(), match.group(1) if match else None)
