"""The local store's images as commands name them: listing, tagging, and removing by rmi's rules.

Removal rules (buildah's and podman's):
- an image named by one of its names loses that name; the image itself leaves the store only
  when that was its last name;
- an image named by ID or digest leaves the store with all its names, which --force must
  confirm when it has several;
- an image that leaves the store takes the containers made from it along with --force, and
  is refused (ImageInUse) while any exist without it;
- removing every image (or every image without a name) spares those containers use, unless
  --force removes the containers first.
Blobs nobody uses any more are left to collect() (store/gc.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from imagetool.descriptor import Descriptor
from imagetool.digest import Digest
from imagetool.errors import ImagetoolError
from imagetool.reference import parse as parse_reference
from imagetool.runtime.kept_containers import remove_container, users_of_images
from imagetool.store import gc
from imagetool.store import images as store_images
from imagetool.store.images import ImageRecord
from imagetool.store.layout import LayoutStore
from imagetool.store.roots import containers_root
from imagetool.transports.local import parse as parse_local


class ImageInUse(ImagetoolError):
    """The image would leave the store while containers made from it remain."""

    def __init__(self, image: str, containers: Iterable[str]) -> None:
        self.image = image
        self.containers = tuple(containers)
        super().__init__(f"image {image} is used by the container(s) {', '.join(self.containers)}: remove them "
                         "first, or use --force")


class SeveralNames(ImagetoolError):
    """An image given by ID or digest has several names: removing it removes them all, so --force must say so."""

    def __init__(self, image: str, names: Iterable[str]) -> None:
        self.image = image
        self.names = tuple(sorted(names))
        super().__init__(f"image {image} has several names: remove them by name or use --force")


def list_local(store: LayoutStore, image: str | None = None, filters: Iterable[str] = ()) -> list[ImageRecord]:
    """The images `images` shows: those the filters keep (only `image`, when given), newest first."""
    records = store_images.filter_images(store_images.list_images(store), filters)
    if image is not None:
        wanted = parse_local(image).resolve(store).digest
        records = [r for r in records if r.digest == wanted]
    return sorted(records, key=lambda r: r.created or "", reverse=True)


def tag_image(store: LayoutStore, image: str, names: Iterable[str]) -> Descriptor:
    """Give the local image `image` the additional `names` (a short name becomes localhost/NAME)."""
    desc = parse_local(image).resolve(store)
    store_images.add_names(store, desc, [parse_local(n).write_name or parse_reference(n) for n in names])
    return desc


@dataclass(frozen=True)
class Removal:
    """What removing one named image does."""

    image: Descriptor
    #: the name to take away; None: the image leaves the store with every name
    name: str | None
    #: whether the image leaves the store (no name of it is left)
    leaves_store: bool
    #: the containers removed with it (--force)
    containers: tuple[str, ...] = ()


class ImageRemoval:
    """One rmi over `store`: who uses which image is read once, and containers removed are remembered."""

    def __init__(self, store: LayoutStore, force: bool = False) -> None:
        self.store = store
        self.force = force
        self.containers_root = containers_root(store)
        self._users = users_of_images(self.containers_root)

    def blockers(self, digest: Digest | str) -> list[str]:
        """The containers made from the image `digest` that are still there."""
        return list(self._users.get(str(digest), []))

    def plan(self, image: str) -> Removal:
        """What removing `image` (a name, ID or digest in the local store) would do; refused as rmi refuses."""
        desc, found_as = parse_local(image).resolve_named(self.store)
        by_name = found_as is not None and bool(found_as.tag) and not found_as.digest and bool(desc.ref_name)
        names = {d.ref_name for d in self.store.index().manifests if d.digest == desc.digest and d.ref_name}
        if not by_name and not self.force and len(names) > 1:
            raise SeveralNames(image, names)
        leaves = not by_name or len(names) == 1
        containers = self.blockers(desc.digest) if leaves else []
        if containers and not self.force:
            raise ImageInUse(image, containers)
        return Removal(desc, str(found_as) if by_name else None, leaves, tuple(containers))

    def remove(self, image: str) -> list[str]:
        """Remove `image` (its name, or the whole image) as plan() says; returns the names removed."""
        removal = self.plan(image)
        if removal.leaves_store:
            self._release(removal.image.digest)
        return store_images.remove_image(self.store, removal.image, removal.name)

    def remove_all(self, dangling_only: bool = False) -> list[ImageRecord]:
        """Remove every image (only those without a name: `dangling_only`), sparing those containers use.

        Without `dangling_only`, an image in use is refused (ImageInUse) unless force, which removes its
        containers first."""
        if not dangling_only:
            for digest, containers in list(self._users.items()):
                if not self.force:
                    raise ImageInUse(digest, containers)
                self._release(digest)
        return store_images.remove_all(self.store, dangling_only=dangling_only, spare=self._users)

    def collect(self) -> gc.GCResult:
        """Remove the blobs no image or container uses any more."""
        return gc.collect(self.store)

    def _release(self, digest: Digest | str) -> None:
        for name in self._users.pop(str(digest), []):
            remove_container(self.containers_root, name)
