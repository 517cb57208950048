"""containers-storage: images in a containers/storage store (overlay driver), shared with podman, buildah
and skopeo on the same machine: what one writes the others read.

reference.py parses names as containers/image does; store.py knows the store's files and locks;
layers.py and tarsplit.py the layers; images.py the image records; source.py and destination.py are the
transport's two ends.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from imagetool.errors import ManifestUnknown
from imagetool.reference import DockerReference
from imagetool.transports.base import ImageDestination, ImageSource, ReferenceBase, SystemContext
from imagetool.transports.containers_storage import images as recs
from imagetool.transports.containers_storage import reference as refparse
from imagetool.transports.containers_storage.store import Store, StoreSpec

TRANSPORT_NAME = refparse.TRANSPORT_NAME


class StorageReference(ReferenceBase):
    transport_name = TRANSPORT_NAME

    def __init__(self, spec: StoreSpec | None, named: DockerReference | None, image_id: str) -> None:
        self.spec = spec
        self.named = named
        self.image_id = image_id

    def store(self) -> Store:
        return Store(self.spec or StoreSpec())

    def store_text(self) -> str:
        """[driver@graphroot+runroot], the store as containers/image names it in references and errors."""
        return str(self.store().spec)

    def string_within_transport(self) -> str:
        text = str(self.store().spec) if self.spec is not None else ""
        if self.named is not None:
            text += str(self.named)
        if self.image_id:
            text += "@" + self.image_id if self.named is not None or self.spec is not None else self.image_id
        return text

    def docker_reference(self) -> DockerReference | None:
        return self.named

    def policy_scopes(self) -> list[str]:
        """containers/image's storage scopes: [driver@graphroot]name:tag, ... down to [driver@graphroot]."""
        spec = self.store().spec
        base = f"[{spec.driver}@{spec.graphroot}+{spec.runroot}]"
        short = f"[{spec.driver}@{spec.graphroot}]"
        scopes = []
        if self.named is not None:
            scopes.append(base + str(self.named))
            if self.named.digest is not None and self.named.tag is not None:
                scopes.append(base + str(replace(self.named, tag=None)))
            name = self.named.name
            scopes.append(base + name)
            while "/" in name:
                name = name.rsplit("/", 1)[0]
                scopes.append(base + name)
        scopes += [base, short, ""]
        return scopes

    def _image(self, store: Store) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        with store.read():
            images = store.images()
            layers = store.layers()
        return recs.resolve(images, self.named, self.image_id, self.store_text()), layers

    def open_source(self, ctx: SystemContext) -> ImageSource:
        from imagetool.transports.containers_storage.source import StorageSource

        store = self.store()
        image, layers = self._image(store)
        return StorageSource(self, store, image, layers)  # type: ignore[return-value]

    def open_destination(self, ctx: SystemContext) -> ImageDestination:
        from imagetool.transports.containers_storage.destination import StorageDestination

        return StorageDestination(self, self.store())  # type: ignore[return-value]

    def delete(self, ctx: SystemContext) -> None:
        from imagetool.transports.containers_storage.delete import delete_image

        store = self.store()
        if not store.exists():
            raise ManifestUnknown(f"{self}: no such image")
        delete_image(store, self.named, self.image_id, self.store_text())


def parse(text: str) -> StorageReference:
    spec, rest = refparse.parse_store_spec(text)

    def find_image(prefix: str) -> str | None:
        store = Store(spec or StoreSpec())
        if not store.exists():
            return None
        with store.read():
            return recs.find_by_prefix(store.images(), prefix)

    named, image_id = refparse.parse_name_and_id(rest, find_image)
    return StorageReference(spec, named, image_id)
