"""Names in index.json: the org.opencontainers.image.ref.name annotation <-> descriptors.

In the local store an image that loses its last name to another image (a rebuild, a copy or
pull over its name, `tag`) stays as an entry without a name, a dangling image as buildah and
podman keep it, until `rmi ID`, `rmi --prune` or `prune` removes it. An OCI layout a user names
is left as other tools leave it: the name moves, the old manifest is left to gc.
"""

from __future__ import annotations

from typing import Sequence

from imagetool.descriptor import ANNOTATION_REF_NAME, Descriptor
from imagetool.digest import Digest
from imagetool.errors import LayoutError, ManifestUnknown
from imagetool.store.layout import LayoutStore


def named(desc: Descriptor, name: str | None) -> Descriptor:
    """The descriptor carrying `name` (or no name) as its ref.name annotation."""
    annotations = {k: v for k, v in desc.annotations.items() if k != ANNOTATION_REF_NAME}
    if name:
        annotations[ANNOTATION_REF_NAME] = name
    return desc.with_(annotations=annotations)


def resolve(store: LayoutStore, name: str | None) -> Descriptor:
    """The index.json entry for `name`; with no name, the only entry there is."""
    entries = store.index().manifests
    if name:
        found = [d for d in entries if d.ref_name == name]
        if not found:
            raise ManifestUnknown(f"no image named {name!r} in {store.root}")
        if len({d.digest for d in found}) > 1:
            raise LayoutError(f"{store.root}: more than one image is named {name!r}")
        return found[0]
    if len(entries) == 1:
        return entries[0]
    if not entries:
        raise ManifestUnknown(f"no image in {store.root}")
    raise LayoutError(f"{store.root} holds {len(entries)} images: name one (PATH:NAME)")


def with_name(entries: list[Descriptor], name: str | None, desc: Descriptor,
              keep_dangling: bool = False) -> list[Descriptor]:
    """`entries` with `name` pointing at `desc`; no name adds an untagged entry (once).

    With `keep_dangling`, an image the name is taken from stays as an untagged entry when it has
    no other, and `desc` loses the untagged entry it may have had."""
    if not name:
        return [d for d in entries if d.ref_name or d.digest != desc.digest] + [named(desc, None)]
    displaced = [d for d in entries if d.ref_name == name and d.digest != desc.digest]
    kept = [d for d in entries if d.ref_name != name
            and not (keep_dangling and not d.ref_name and d.digest == desc.digest)]
    out = kept + [named(desc, name)]
    if keep_dangling:
        for old in displaced:
            if not any(d.digest == old.digest for d in out):
                out.append(named(old, None))
    return out


def set_name(store: LayoutStore, name: str | None, desc: Descriptor, keep_dangling: bool = False) -> None:
    """Point `name` at `desc`, taking the name off whatever held it; no name adds an untagged entry."""
    store.update_index(lambda entries: with_name(entries, name, desc, keep_dangling))


def remove_name(store: LayoutStore, name: str) -> Descriptor:
    removed: list[Descriptor] = []

    def change(entries: list[Descriptor]) -> Sequence[Descriptor]:
        removed.extend(d for d in entries if d.ref_name == name)
        return [d for d in entries if d.ref_name != name]

    store.update_index(change)
    if not removed:
        raise ManifestUnknown(f"no image named {name!r} in {store.root}")
    return removed[0]


def remove_digest(store: LayoutStore, digest: Digest) -> list[Descriptor]:
    removed: list[Descriptor] = []

    def change(entries: list[Descriptor]) -> Sequence[Descriptor]:
        removed.extend(d for d in entries if d.digest == digest)
        return [d for d in entries if d.digest != digest]

    store.update_index(change)
    return removed
