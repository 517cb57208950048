"""Pulling: an image from any transport copied into the local store under the name buildah would give it."""

from __future__ import annotations

from dataclasses import dataclass

from imagetool.copy import CopyOptions, copy_image
from imagetool.descriptor import Descriptor
from imagetool.digest import Digest
from imagetool.errors import NotFound, UsageError
from imagetool.store import images
from imagetool.store.layout import LayoutStore
from imagetool.transports import parse_image_name
from imagetool.transports.base import ImageReference
from imagetool.transports.local import name_for

POLICIES = ("missing", "always", "never")


@dataclass(frozen=True)
class Pulled:
    """An image in the local store after a pull: the store and its index.json entry."""

    store: LayoutStore
    descriptor: Descriptor

    @property
    def id(self) -> Digest:
        return images.image_id(self.store, self.descriptor)


def pull_image(source: ImageReference, options: CopyOptions, policy: str = "missing",
               all_tags: bool = False) -> list[Pulled]:
    """Copy `source` (every tag of its repository with `all_tags`) into the local store.

    policy "missing" copies only names the store lacks, "never" only looks them up."""
    if policy not in POLICIES:
        raise UsageError(f"pull policy {policy!r}: expected one of {', '.join(POLICIES)}")
    sources = [source]
    if all_tags:
        named = source.docker_reference()
        if named is None or source.transport_name != "docker":
            raise UsageError("--all-tags needs a docker:// repository")
        if named.digest is not None:
            raise UsageError(f"--all-tags takes a repository, not {named}")
        from imagetool.transports.docker import make_client

        tags = make_client(named, options.src_ctx).list_tags(named.path)
        sources = [parse_image_name(f"docker://{named.name}:{tag}") for tag in tags]
    pulled = []
    for src in sources:
        local = name_for(src)
        store = local.store(options.dest_ctx, create=True)
        try:
            found = images.resolve(store, local.named, local.id_prefix) if policy != "always" else None
        except NotFound as err:
            if policy == "never":
                raise NotFound(f"{local} is not in the local store (pull policy never)") from err
            found = None
        if found is None:
            copy_image(src, local, options)
            found = images.resolve(store, local.named, local.id_prefix)
        pulled.append(Pulled(store, found))
    return pulled
