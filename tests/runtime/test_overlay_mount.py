"""Overlay mounts made on the host from several threads at once (the runc steps of a multi-platform build):
each mount gets its own layers, whether its options hold absolute lowerdirs or ones relative to a directory."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from imagetool.runtime import linux
from imagetool.runtime.rootfs import MAX_MOUNT_DATA, mount_overlay


def _layers(parent: Path, who: str, count: int) -> list[str]:
    """`count` lowerdirs, the top one naming `who`, bottom ones each holding a file of their own."""
    dirs = []
    for i in range(count):
        d = parent / f"l{i}"
        d.mkdir(parents=True)
        (d / f"f{i}").write_text(who)
        dirs.append(str(d))
    (parent / "l0" / "who").write_text(who)
    return dirs


@pytest.mark.parametrize("parent_name", ["short", "p" * 200], ids=["absolute", "relative"])
def test_threads_mounting_at_once_each_see_their_own_layers(tmp_path: Path, parent_name: str) -> None:
    count = 24
    sets = {who: _layers(tmp_path / who / parent_name, who, count) for who in ("a", "b")}
    if parent_name != "short":  # the options only fit in a page relative to the layers' parent
        assert sum(len(d) + 1 for d in sets["a"]) > MAX_MOUNT_DATA
    seen: dict[str, list[str]] = {"a": [], "b": []}
    errors: list[BaseException] = []

    def mount_many(who: str) -> None:
        target = tmp_path / f"mnt-{who}"
        target.mkdir()
        try:
            for _ in range(30):
                mount_overlay(str(target), sets[who], None, None)
                try:
                    seen[who].append((target / "who").read_text())
                finally:
                    linux.umount(str(target), linux.MNT_DETACH)
        except BaseException as err:  # noqa: BLE001 - reported by the test's thread
            errors.append(err)

    threads = [threading.Thread(target=mount_many, args=(who,)) for who in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert seen == {"a": ["a"] * 30, "b": ["b"] * 30}
