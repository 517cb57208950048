"""imagetool.local_images: listing, tagging and rmi's removal rules as library calls, containers included."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagetool.local_images import ImageInUse, ImageRemoval, SeveralNames, list_local, tag_image
from imagetool.store.layout import LayoutStore
from tests.lib.cli import imagetool
from tests.lib.images import random_image


def _names(store: LayoutStore) -> list[str]:
    return sorted(n for r in list_local(store) for n in r.names)


def test_tag_list_and_the_name_rules(tmp_path: Path, local_store: Path) -> None:
    desc = random_image(tmp_path / "src", "v1")
    imagetool("copy", "-q", f"oci:{tmp_path}/src:v1", "localhost/app:1")
    store = LayoutStore.open(local_store)
    assert tag_image(store, "localhost/app:1", ["busybox", "quay.io/x/y:2"]).digest == desc.digest
    assert _names(store) == ["localhost/app:1", "localhost/busybox:latest", "quay.io/x/y:2"]  # short: localhost/
    [record] = list_local(store, "busybox")
    assert record.digest == desc.digest
    assert list_local(store, filters=["reference=quay.io/*/*"]) == [record]
    assert list_local(store, filters=["dangling=true"]) == []
    removal = ImageRemoval(store)
    # by ID: the image would go with its three names, which only --force confirms
    with pytest.raises(SeveralNames) as raised:
        removal.plan(record.id.hex[:12])
    assert raised.value.names == ("localhost/app:1", "localhost/busybox:latest", "quay.io/x/y:2")
    plan = ImageRemoval(store, force=True).plan(record.id.hex[:12])
    assert (plan.name, plan.leaves_store, plan.containers) == (None, True, ())
    # by name: only that name goes, the image stays while it has another
    plan = removal.plan("busybox")
    assert (plan.name, plan.leaves_store) == ("localhost/busybox:latest", False)
    assert removal.remove("busybox") == ["localhost/busybox:latest"]
    assert removal.remove("quay.io/x/y:2") == ["quay.io/x/y:2"]
    assert removal.plan("localhost/app:1").leaves_store  # its last name
    assert removal.remove("localhost/app:1") == ["localhost/app:1"]
    assert _names(store) == [] and removal.collect().removed


def test_containers_block_the_removal_of_their_image(busybox: str, local_store: Path) -> None:
    imagetool("run", "--name", "keep", busybox, "true")
    imagetool("tag", busybox, "localhost/alias:1")
    store = LayoutStore.open(local_store)
    [record] = list_local(store, busybox)
    removal = ImageRemoval(store)
    assert removal.blockers(record.digest) == ["keep"]
    assert removal.remove("localhost/alias:1") == ["localhost/alias:1"]  # a name goes, the image stays
    for attempt in (lambda: removal.remove(busybox), lambda: removal.remove_all()):
        with pytest.raises(ImageInUse) as raised:
            attempt()
        assert raised.value.containers == ("keep",)
        assert "used by the container(s) keep: remove them first, or use --force" in str(raised.value)
    assert removal.remove_all(dangling_only=True) == []  # nothing dangling, and the used image is spared
    assert imagetool("ps", "-q").stdout == "keep\n" and _names(store) == ["localhost/busybox:latest"]
    forced = ImageRemoval(store, force=True)
    plan = forced.plan(busybox)
    assert (plan.leaves_store, plan.containers) == (True, ("keep",))
    assert forced.remove(busybox) == ["localhost/busybox:latest"]
    assert imagetool("ps", "-q").stdout == "" and forced.blockers(record.digest) == []
    assert _names(store) == []
