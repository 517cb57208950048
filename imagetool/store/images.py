"""Images in the local store: listing, naming, resolving names and IDs, removing.

An image's ID is its config digest (an index's own digest for a multi-platform image),
as buildah and podman show it; any unique prefix of 4+ hex digits names it too.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Iterable

from imagetool import media
from imagetool.descriptor import Descriptor
from imagetool.digest import Digest
from imagetool.errors import InvalidDigest, InvalidReference, ManifestError, ManifestUnknown, UsageError
from imagetool.manifest import ImageConfig, Index, Manifest, guess_media_type, parse
from imagetool.reference import DockerReference
from imagetool.store import refs
from imagetool.store.layout import LayoutStore
from imagetool.store.roots import held_images


@dataclass(frozen=True)
class ImageRecord:
    names: tuple[str, ...]
    id: Digest
    digest: Digest
    media_type: str
    created: str | None
    size: int
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def dangling(self) -> bool:
        return not self.names


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


def by_digest(store: LayoutStore, digest: Digest) -> Descriptor:
    """The image with manifest digest `digest`, named or not, in index.json or held only by a container."""
    for desc in store.index().manifests:
        if desc.digest == digest:
            return desc
    if not store.has_blob(digest):
        raise ManifestUnknown(f"image {digest} not found in the local store")
    raw = store.read_blob(digest)
    return Descriptor(guess_media_type(raw), digest, len(raw))


def shown_name(store: LayoutStore, name: str, digest_text: str) -> str:
    """How `ps` shows a container's image: the name it was run by while that name still means the image,
    else the image's short ID (a rebuild or tag has given the name to another image)."""
    from imagetool.reference import local_candidates

    try:
        digest = Digest.parse(digest_text)
    except InvalidDigest:
        return name
    try:
        candidates = local_candidates(name) if name else []
    except InvalidReference:
        candidates = []
    for ref in candidates:  # the image the name finds first, as `run NAME` found it
        found = [d for d in store.index().manifests if d.ref_name == str(ref)]
        if ref.digest == digest or (found and found[0].digest == digest):
            return name
        if found:
            break
    try:
        return image_id(store, by_digest(store, digest)).hex[:12]
    except (ManifestUnknown, OSError):
        return digest.hex[:12]


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
        created, size, labels = None, descs[0].size, {}
        if isinstance(m, Manifest):
            size += m.config.size + sum(layer.size for layer in m.layers)
            if media.is_config(m.config.media_type) and store.has_blob(m.config.digest):
                try:
                    config = ImageConfig.parse(store.read_blob(m.config.digest))
                    created = config.created
                    labels = dict(config.config.get("Labels") or {})
                except ManifestError:
                    pass
        names = tuple(sorted(d.ref_name for d in descs if d.ref_name))
        records.append(ImageRecord(names, image_id(store, descs[0]), digest, descs[0].media_type, created, size,
                                   labels))
    return records


def remove_all(store: LayoutStore, dangling_only: bool = False, spare: Iterable[str] = (),
               dry_run: bool = False) -> list[ImageRecord]:
    """Take every image (or every image without a name) out of the index, but those whose manifest digest
    is in `spare` and those containers were made from; their blobs are left to gc."""
    kept = set(spare) | {str(d) for d in held_images(store)}
    removed = [r for r in list_images(store) if (r.dangling or not dangling_only) and str(r.digest) not in kept]
    for record in [] if dry_run else removed:
        refs.remove_digest(store, record.digest)
    return removed


FILTERS = ("dangling", "reference", "label", "before", "since", "id")


def filter_images(records: list[ImageRecord], filters: Iterable[str]) -> list[ImageRecord]:
    """buildah's and podman's `images --filter KEY=VALUE`: every filter must hold (AND)."""
    by_name = {name: r for r in records for name in r.names}
    for text in filters:
        key, sep, value = text.partition("=")
        if key not in FILTERS or not sep:
            raise UsageError(f"invalid filter {text!r} (expected KEY=VALUE, KEY one of {', '.join(FILTERS)})")
        if key == "dangling":
            if value not in ("true", "false"):
                raise UsageError(f"invalid filter {text!r}: dangling is true or false")
            records = [r for r in records if r.dangling == (value == "true")]
        elif key == "reference":
            records = [r for r in records if any(_reference_matches(value, n) for n in r.names)]
        elif key == "label":
            name, has_value, wanted = value.partition("=")
            records = [r for r in records if name in r.labels and (not has_value or r.labels[name] == wanted)]
        elif key == "id":
            records = [r for r in records if r.id.hex.startswith(value.removeprefix("sha256:"))]
        else:
            pivot = by_name.get(_full_name(value)) or next(
                (r for r in records if r.id.hex.startswith(value.removeprefix("sha256:"))), None)
            if pivot is None or pivot.created is None:
                raise UsageError(f"invalid filter {text!r}: no image {value!r} with a creation time")
            records = [r for r in records if r.created is not None
                       and (r.created < pivot.created if key == "before" else r.created > pivot.created)]
    return records


def _full_name(text: str) -> str:
    from imagetool.reference import parse as parse_reference

    try:
        return str(parse_reference(text).with_default_tag())
    except InvalidReference:
        return text


def _reference_matches(pattern: str, name: str) -> bool:
    """A glob against the full name or its short form (docker.io/library/ or localhost/ dropped), with or
    without the tag."""
    repo = name.rpartition(":")[0] if ":" in name.rpartition("/")[2] else name
    short = [n.removeprefix("localhost/") if n.startswith("localhost/")
             else n.removeprefix("docker.io/").removeprefix("library/") for n in (name, repo)]
    return any(fnmatch.fnmatchcase(candidate, pattern) for candidate in (name, repo, *short))


def add_names(store: LayoutStore, desc: Descriptor, names: Iterable[DockerReference]) -> None:
    for name in names:
        refs.set_name(store, str(name.with_default_tag()), desc, keep_dangling=True)


def remove_image(store: LayoutStore, desc: Descriptor, name: str | None) -> list[str]:
    """Untag `name`, or with no name remove every entry of the image; returns the names removed."""
    if name:
        refs.remove_name(store, name)
        return [name]
    return [d.ref_name or str(d.digest) for d in refs.remove_digest(store, desc.digest)]
