"""Refuse an image that a single-id user namespace cannot hold, before any of it is unpacked.

A user with no subordinate ids (or no newuidmap) runs containers in a namespace that maps
only its own uid and gid, as 0. A layer file owned by any other id would have to be
unpacked with the wrong owner: rather than run on wrong bytes, run and build refuse the
image in one line naming the file and the id (podman fails the same way, at chown). Pulling
is unaffected: blobs in the store keep every owner as it is. Only layers not yet unpacked
are read, and only for such a user, so the check costs nothing to anyone else.
"""

from __future__ import annotations

import os

from imagetool.descriptor import Descriptor
from imagetool.digest import Digest
from imagetool.errors import ContainerError
from imagetool.store.layout import LayoutStore


def foreign_owner(stream: object) -> tuple[str, str, int] | None:
    """The first member of a layer tar owned by an id other than 0: (name, "uid"|"gid", id)."""
    import tarfile  # only rootless, for a layer not unpacked yet

    with tarfile.open(fileobj=stream, mode="r|") as tar:  # type: ignore[call-overload]
        for member in tar:
            if member.uid != 0:
                return member.name, "uid", member.uid
            if member.gid != 0:
                return member.name, "gid", member.gid
    return None


def check_layers(store: LayoutStore, layers: list[tuple[Descriptor, Digest]]) -> None:
    """Raise ContainerError when the caller's namespace maps one id and a layer to unpack needs another."""
    if os.geteuid() == 0:
        return
    from imagetool.runtime import idmap

    uid, gid = os.getuid(), os.getgid()
    if len(idmap.maps_for(uid, gid)[0]) > 1:
        return
    import tarfile

    from imagetool import compression
    from imagetool.store.snapshots import SnapshotStore, chain_ids

    snapshots = SnapshotStore(store)
    for (desc, _diff_id), chain in zip(layers, chain_ids([d for _, d in layers]), strict=True):
        if snapshots.get(chain) is not None:
            continue
        with store.open_blob(desc.digest) as raw:
            _algorithm, stream = compression.auto_decompressor(raw)
            try:
                found = foreign_owner(stream)
            except tarfile.TarError as err:
                raise ContainerError(f"layer {desc.digest.short}: {err}") from err
        if found is not None:
            name, kind, number = found
            reason = idmap.single_id_reason(uid) or "no subordinate ids"
            raise ContainerError(
                f"layer {desc.digest.short}: /{name.lstrip('./')} is owned by {kind} {number}, which this user "
                f"namespace cannot represent ({reason}: only uid {uid} and gid {gid} are mapped)")
