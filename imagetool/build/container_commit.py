"""`commit`: a container kept by `run` -> a new image, its image's layers plus one layer of its changes.

What the runtime itself put in the upperdir (empty mountpoints such as /etc/hosts) is tidied away
first, as docker and podman leave their mountpoints out of a commit.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from imagetool import compression
from imagetool.build.imagewriter import ImageParts, commit, default_timestamp, rfc3339, store_name
from imagetool.build.config import DEFAULT_SHELL, ConfigState, apply_changes
from imagetool.build.layerwriter import write_layer
from imagetool.build.stages import Scope
from imagetool.descriptor import Descriptor
from imagetool.digest import Digest
from imagetool.errors import ContainerError, ImagetoolError
from imagetool.layer.diff import write_diff
from imagetool.runtime import kept_containers, overlay
from imagetool.runtime.etcfiles import ETC_FILES
from imagetool.runtime.image import layer_dirs, load
from imagetool.runtime.launch import containers_dir
from imagetool.store import images
from imagetool.store.layout import LayoutStore


def commit_container(store: LayoutStore, container: str, name: str | None = None, *, changes: Sequence[str] = (),
                     message: str = "", author: str = "", timestamp: int | None = None,
                     layer_compression: str | None = compression.GZIP, oci: bool = True) -> Descriptor:
    """Commit the stopped container `container` as an image named `name` (unnamed without one)."""
    store_name(name)  # a bad name fails before anything is written
    cdir, record = kept_containers.stopped(containers_dir(store), container)
    spec = record.get("spec") or {}
    try:
        base = images.by_digest(store, Digest.parse(str(record.get("image", ""))))
    except ImagetoolError as err:
        raise ContainerError(f"container {container!r}: its image is no longer in the local store") \
            .citing_cause() from err
    image = load(store, base)
    upper = cdir / "upper"
    mountpoints = [m.get("destination", "") for m in spec.get("mounts") or []] + list(ETC_FILES)
    overlay.tidy_mountpoints(upper, layer_dirs(store, image.layers), mountpoints)
    if timestamp is None:
        timestamp = default_timestamp()
    state = ConfigState.from_image(dict(image.config.doc))
    apply_changes(state, list(changes), Scope({}, {}, state.env()))
    config = dict(state.config)
    if not oci and (state.shell_set or state.shell != DEFAULT_SHELL):
        config["Shell"] = list(state.shell)
    lock = store.hold_shared()
    try:
        layer = write_layer(store, lambda out: write_diff(upper, out, timestamp), layer_compression, oci)
        parts = ImageParts(config, [*image.layers, layer], image.config.history, author or state.author,
                           image.config.platform, rfc3339(timestamp))
        args = (spec.get("process") or {}).get("args") or []
        parts.add_history(shlex.join(args) if args else f"imagetool commit {container}", empty_layer=False,
                          comment=message)
        return commit(store, parts, [name] if name else [], oci)
    finally:
        lock.release()
