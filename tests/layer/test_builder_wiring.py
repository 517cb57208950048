"""The builder on top of snapshots and write_diff: base images come from the store's snapshots, new
layers' upperdirs become snapshots, RUN deletions become OCI whiteouts that umoci applies."""

from __future__ import annotations

import os
import stat
import tarfile
from pathlib import Path

from imagetool.manifest import ImageConfig, parse_manifest
from imagetool.store import refs
from imagetool.store.layout import LayoutStore
from imagetool.store.snapshots import SnapshotStore, chain_ids
from tests.lib.bundles import umoci_unpack, write_tree
from tests.lib.cli import imagetool
from tests.lib.images import busybox_files

BASE = 'FROM scratch\nCOPY rootfs/ /\nENV PATH=/usr/sbin:/usr/bin:/sbin:/bin\nCMD ["/bin/sh"]\n'


def _layers(store_root: Path, name: str) -> list:  # type: ignore[type-arg]
    store = LayoutStore.open(store_root)
    manifest = parse_manifest(store.read_blob(refs.resolve(store, f"localhost/{name}:latest").digest))
    config = ImageConfig.parse(store.read_blob(manifest.config.digest))
    return list(zip(manifest.layers, config.diff_ids, strict=True))


def _base(tmp_path: Path) -> None:
    ctx = tmp_path / "base"
    write_tree(ctx / "rootfs", busybox_files())
    (ctx / "Dockerfile").write_text(BASE)
    imagetool("build", "-q", "-t", "bb", str(ctx))


def test_from_and_copy_use_snapshots(tmp_path: Path, local_store: Path) -> None:
    _base(tmp_path)
    ctx = tmp_path / "child"
    ctx.mkdir()
    (ctx / "a.txt").write_text("a\n")
    (ctx / "Dockerfile").write_text("FROM bb\nCOPY a.txt /data/\nCOPY --from=bb /etc/passwd /data/p\n")
    imagetool("build", "-q", "-t", "child", str(ctx))
    layers = _layers(local_store, "child")
    snaps = SnapshotStore(LayoutStore.open(local_store))
    chains = chain_ids([d for _, d in layers])
    trees = [snaps.get(c) for c in chains]
    assert all(trees), trees                           # the base unpacked once, each new layer registered
    assert (trees[0] / "bin" / "busybox").is_file()  # type: ignore[operator]
    assert (trees[1] / "data" / "a.txt").read_text() == "a\n"  # type: ignore[operator]
    assert (trees[2] / "data" / "p").read_bytes() == busybox_files()["etc/passwd"]  # type: ignore[operator]
    bundle = umoci_unpack(local_store, "localhost/child:latest", tmp_path / "bundle")
    assert (bundle / "rootfs" / "data" / "a.txt").read_text() == "a\n"


def test_run_deletions_become_whiteouts(tmp_path: Path, local_store: Path) -> None:
    _base(tmp_path)
    ctx = tmp_path / "child"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM bb\nRUN rm /etc/group && rm -rf /tmp && mkdir /tmp && touch /tmp/new\n"
        "RUN test ! -e /etc/group && ls /tmp > /listing\n")
    imagetool("build", "-q", "-t", "runs", str(ctx))
    layers = _layers(local_store, "runs")
    store = LayoutStore.open(local_store)
    with tarfile.open(store.blob_path(layers[1][0].digest)) as t:
        names = t.getnames()
    assert "etc/.wh.group" in names and "tmp/.wh..wh..opq" in names and "tmp/new" in names
    tree = SnapshotStore(store).get(chain_ids([d for _, d in layers])[1])
    assert tree is not None
    st = os.lstat(tree / "etc" / "group")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    rootfs = umoci_unpack(local_store, "localhost/runs:latest", tmp_path / "bundle") / "rootfs"
    assert not (rootfs / "etc" / "group").exists() and (rootfs / "etc" / "passwd").exists()
    assert os.listdir(rootfs / "tmp") == ["new"]
    assert (rootfs / "listing").read_text() == "new\n"
