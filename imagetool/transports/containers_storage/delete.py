"""Deleting an image from a containers/storage store, as `skopeo delete containers-storage:` does
(containers/storage's DeleteImage with commit): the image's record and big data go, and so do its layers,
from the top down, as long as no other image, container or layer builds on them."""

from __future__ import annotations

from typing import Any

from imagetool.errors import ImagetoolError
from imagetool.reference import DockerReference
from imagetool.transports.containers_storage import images as recs
from imagetool.transports.containers_storage import layers as lay
from imagetool.transports.containers_storage.store import Store


class ImageInUse(ImagetoolError):
    pass


def delete_image(store: Store, named: DockerReference | None, image_id: str, where: str = "") -> str:
    with store.write():
        images = store.images()
        img = recs.resolve(images, named, image_id, where)
        containers = store.containers()
        if any(c.get("image") == img["id"] for c in containers):
            raise ImageInUse(f"image {img['id']} is in use by a container")
        images = [i for i in images if i is not img]
        layers = store.layers()
        _remove_unused_layers(store, layers, img.get("layer"), images, containers)
        store.save_layers(layers)
        store.save_images(images)
        import shutil

        shutil.rmtree(store.images_dir / str(img["id"]), ignore_errors=True)
        return str(img["id"])


def _remove_unused_layers(store: Store, layers: list[dict[str, Any]], top: str | None,
                          images: list[dict[str, Any]], containers: list[dict[str, Any]]) -> None:
    used = set()
    for i in images:
        used.add(i.get("layer"))
        used.update(i.get("mapped-layers") or [])
    used.update(c.get("layer") for c in containers)
    while top:
        entry = lay.find(layers, top)
        if entry is None or top in used or any(e.get("parent") == top for e in layers):
            return
        parent = entry.get("parent")
        lay.remove(store, layers, top)
        top = parent
