"""Images in the local store: listing, naming, resolving names and IDs, removing.

An image's ID is its config digest (an index's own digest for a multi-platform image),
as buildah and podman show it; any unique prefix of 4+ hex digits names it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from imagetool import media
from imagetool.descriptor import Descriptor
from imagetool.digest import Digest
from imagetool.errors import InvalidReference, ManifestError, ManifestUnknown
from imagetool.manifest import ImageConfig, Index, Manifest, guess_media_type, parse
from imagetool.reference import DockerReference
from imagetool.store import refs
from imagetool.store.layout import LayoutStore


@dataclass(frozen=True)
class ImageRecord:
    names: tuple[str, ...]
    id: Digest
    digest: Digest
    media_type: str
    created: str | None
    size: int


def _manifest(store: LayoutStore, desc: Descriptor) -> Manifest | Index | None:
    try:
        return parse(store.read_blob(desc.digest), desc.media_type or None)
    except (ManifestError, OSError):
        return None


def image_id(store: LayoutStore, desc: Descriptor) -> Digest:
    m = _manifest(store, desc)
    return m.config.digest if isinstance(m, Manifest) else desc.digest


def find_by_id(store: LayoutStore, prefix: str) -> Descriptor | None:
    hexpart = prefix.removeprefix("sha256:")
    found = {d.digest: d for d in store.index().manifests
             if image_id(store, d).hex.startswith(hexpart) or d.digest.hex.startswith(hexpart)}
    if len(found) > 1:
        raise InvalidReference(f"image ID {prefix!r} is ambiguous")
    return next(iter(found.values()), None)


def resolve(store: LayoutStore, named: DockerReference | None, id_prefix: str | None = None) -> Descriptor:
    """The image a name (name:tag, name@digest) or ID prefix refers to."""
    entries = store.index().manifests
    if named is not None and named.tag and named.digest is None:
        found = [d for d in entries if d.ref_name == str(named)]
        if found:
            return found[0]
    if named is not None and named.digest is not None:
        for desc in entries:
            if desc.digest == named.digest:
                return desc
        if store.has_blob(named.digest):
            raw = store.read_blob(named.digest)
            return Descriptor(guess_media_type(raw), named.digest, len(raw))
    if id_prefix is not None:
        found_id = find_by_id(store, id_prefix)
        if found_id is not None:
            return found_id
    what = str(named) if named is not None else id_prefix
    raise ManifestUnknown(f"image {what!r} not found in the local store")


def list_images(store: LayoutStore) -> list[ImageRecord]:
    """One record per image (entries sharing a digest are merged, names gathered)."""
    by_digest: dict[Digest, list[Descriptor]] = {}
    for desc in store.index().manifests:
        by_digest.setdefault(desc.digest, []).append(desc)
    records = []
    for digest, descs in by_digest.items():
        m = _manifest(store, descs[0])
        created, size = None, descs[0].size
        if isinstance(m, Manifest):
            size += m.config.size + sum(layer.size for layer in m.layers)
            if media.is_config(m.config.media_type) and store.has_blob(m.config.digest):
                try:
                    created = ImageConfig.parse(store.read_blob(m.config.digest)).created
                except ManifestError:
                    pass
        names = tuple(sorted(d.ref_name for d in descs if d.ref_name))
        records.append(ImageRecord(names, image_id(store, descs[0]), digest, descs[0].media_type, created, size))
    return records


def add_names(store: LayoutStore, desc: Descriptor, names: Iterable[DockerReference]) -> None:
    for name in names:
        refs.set_name(store, str(name.with_default_tag()), desc)


def remove_image(store: LayoutStore, desc: Descriptor, name: str | None) -> list[str]:
    """Untag `name`, or with no name remove every entry of the image; returns the names removed."""
    if name:
        refs.remove_name(store, name)
        return [name]
    return [d.ref_name or str(d.digest) for d in refs.remove_digest(store, desc.digest)]
