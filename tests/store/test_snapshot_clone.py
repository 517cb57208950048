"""The same layer on another parent: its snapshot is a hard-link clone of the published one, not a new unpack
(and, for a zstd:chunked pull, nothing of it is fetched)."""

from __future__ import annotations

import io
import json
import os
import signal
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from imagetool import media
from imagetool.descriptor import Descriptor
from imagetool.digest import Digest
from imagetool.layer.unpack import UnpackOptions, unpack
from imagetool.manifest import ImageConfig, parse_manifest
from imagetool.store import refs
from imagetool.store.gc import collect
from imagetool.store.layout import TEMP_PREFIX, LayoutStore
from imagetool.store.snapshots import SnapshotStore, chain_ids
from tests.lib.cli import imagetool
from tests.lib.faultproxy import FaultProxy
from tests.lib.images import Layer, tar_bytes, write_image
from tests.lib.registry import Registry

MTIME = 1_700_000_000


def _shared_layer() -> bytes:
    """L: owners, a read-only dir, set-id bits, an xattr, an opaque dir, a whiteout, a symlink, a fifo."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(name: str, kind: bytes, mode: int, data: bytes = b"", uid: int = 0, link: str = "",
                pax: dict[str, str] | None = None) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.uid, info.gid, info.mtime = kind, mode, uid, uid, MTIME
            info.linkname, info.size = link, len(data)
            if pax:
                info.pax_headers = pax
            tar.addfile(info, io.BytesIO(data) if data else None)

        add("srv/", tarfile.DIRTYPE, 0o750, uid=1234)
        add("srv/owned", tarfile.REGTYPE, 0o4755, os.urandom(70_000), uid=1234,
            pax={"SCHILY.xattr.user.note": "kept"})
        add("srv/second", tarfile.REGTYPE, 0o640, os.urandom(30_000), uid=1235)
        add("srv/link", tarfile.SYMTYPE, 0o777, uid=1234, link="owned")
        add("srv/pipe", tarfile.FIFOTYPE, 0o620, uid=1234)
        add("ro/", tarfile.DIRTYPE, 0o555)
        add("ro/inside", tarfile.REGTYPE, 0o444, b"ro\n")
        add("opt/", tarfile.DIRTYPE, 0o755)
        add("opt/.wh..wh..opq", tarfile.REGTYPE, 0o644)
        add("opt/new", tarfile.REGTYPE, 0o644, b"new\n")
        add("etc/", tarfile.DIRTYPE, 0o755)
        add("etc/.wh.gone", tarfile.REGTYPE, 0o644)
    return buf.getvalue()


L = _shared_layer()
A = tar_bytes({"etc/": None, "etc/gone": "a\n", "opt/": None, "opt/old": "a\n"}, mtime=MTIME)
B = tar_bytes({"etc/": None, "etc/gone": "b\n", "opt/": None, "opt/old": "b\n", "etc/b": "b\n"}, mtime=MTIME)


def _plain(raw: bytes) -> Layer:
    return Layer(raw, Digest.of(raw), media.OCI_LAYER)


def _image(store_root: Path, name: str, raws: list[bytes]) -> list[tuple[Descriptor, Digest]]:
    write_image(store_root, name, [_plain(r) for r in raws], create=(store_root / "index.json").exists() is False)
    store = LayoutStore.open(store_root)
    manifest = parse_manifest(store.read_blob(refs.resolve(store, name).digest))
    config = ImageConfig.parse(store.read_blob(manifest.config.digest))
    return list(zip(manifest.layers, config.diff_ids, strict=True))


def listing(root: Path, times: bool = True) -> dict[str, tuple[object, ...]]:
    """Everything a lowerdir shows of each entry: kind, mode, owners, mtime, xattrs, device, target, content."""
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirs, names in os.walk(root):
        for name in dirs + names:
            path = Path(dirpath) / name
            st = path.lstat()
            link = stat.S_ISLNK(st.st_mode)
            xattrs = {} if link else {x: os.getxattr(path, x, follow_symlinks=False)
                                      for x in os.listxattr(path, follow_symlinks=False)}
            extra: object = None
            if link:
                extra = os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                extra = path.read_bytes()
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                extra = st.st_rdev
            out[str(path.relative_to(root))] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid,
                                                st.st_gid, st.st_mtime_ns if times else None, xattrs, extra)
    return out


def _inodes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.lstat().st_ino for p in root.rglob("*")
            if stat.S_ISREG(p.lstat().st_mode)}


def test_the_same_layer_on_another_parent_is_a_hard_link_clone(tmp_path: Path) -> None:
    one = _image(tmp_path / "s", "one", [A, L])
    two = _image(tmp_path / "s", "two", [B, L])
    assert one[1][1] == two[1][1] and one[1][0].digest == two[1][0].digest
    snaps = SnapshotStore(LayoutStore.open(tmp_path / "s"))
    first = snaps.prepare(one)[0]
    os.unlink(snaps.store.blob_path(one[1][0].digest))  # L's blob is gone: the second can only be a clone
    second = snaps.prepare(two)[0]
    assert first != second and second == snaps.path(chain_ids([d for _, d in two])[1])
    assert _inodes(second) == _inodes(first) and len(_inodes(first)) == 4  # the same inodes, file by file
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    unpack(io.BytesIO(L), fresh, UnpackOptions(whiteouts="overlay"))
    got = listing(second)
    assert got == listing(first) == listing(fresh)
    assert got["srv/owned"][1:4] == (0o4755, 1234, 1234) and got["srv/owned"][5] == {"user.note": b"kept"}
    assert got["etc/gone"][0] == stat.S_IFCHR and got["etc/gone"][6] == 0               # the whiteout
    assert got["opt"][5] == {"trusted.overlay.opaque": b"y"}                              # the opaque dir
    assert got["srv/pipe"][0] == stat.S_IFIFO and got["srv/link"][6] == "owned"
    assert got["ro"][1] == 0o555 and got["srv/link"][4] == MTIME * 10**9
    info = json.loads((second.parent / "snapshot.json").read_text())
    assert info["parent"] == str(two[0][1]) and info["diffID"] == str(two[1][1])
    assert not [n for n in os.listdir(snaps.root) if n.startswith(TEMP_PREFIX)]


def test_a_source_that_vanishes_falls_back_to_unpacking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    one = _image(tmp_path / "s", "one", [A, L])
    two = _image(tmp_path / "s", "two", [B, L])
    snaps = SnapshotStore(LayoutStore.open(tmp_path / "s"))
    first = snaps.prepare(one)[0]
    from imagetool.store import clone

    calls: list[str] = []

    def vanishing(src: str, dst: str) -> None:  # the source gone half-way through the walk
        calls.append(src)
        os.mkdir(dst)
        raise FileNotFoundError(2, "No such file or directory", src)

    monkeypatch.setattr(clone, "clone_tree", vanishing)
    second = snaps.prepare(two)[0]
    assert calls == [str(first)]
    assert not set(_inodes(second).values()) & set(_inodes(first).values())  # unpacked from the blob after all
    assert listing(second) == listing(first)
    assert not [n for n in os.listdir(snaps.root) if n.startswith(TEMP_PREFIX)]


def test_gc_of_either_snapshot_leaves_the_other_whole(tmp_path: Path) -> None:
    one = _image(tmp_path / "s", "one", [A, L])
    two = _image(tmp_path / "s", "two", [B, L])
    store = LayoutStore.open(tmp_path / "s")
    snaps = SnapshotStore(store)
    first, second = snaps.prepare(one)[0], snaps.prepare(two)[0]
    want = listing(first)
    refs.remove_name(store, "one")  # the source of the clone goes
    removed = collect(store).snapshots_removed
    assert set(removed) == set(chain_ids([d for _, d in one]))
    assert not first.exists() and listing(second) == want
    assert all(p.stat().st_nlink == 1 for p in second.rglob("*") if p.is_file() and not p.is_symlink())
    one = _image(tmp_path / "s", "one", [A, L])      # written anew (gc took its blobs)
    again = snaps.prepare(one)[0]                    # and back: now the clone is the source
    assert listing(again) == want and _inodes(again) == _inodes(second)
    refs.remove_name(store, "two")
    collect(store)
    assert not second.exists() and listing(again) == want


_SLOW_CLONER = """
import os, sys, time
from imagetool.store.layout import LayoutStore
from imagetool.store.snapshots import SnapshotStore
from tests.store.test_snapshot_clone import _image_layers
real, count = os.link, [0]
def link(*args, **kw):
    real(*args, **kw)
    count[0] += 1
    if count[0] == 200:
        print("mid-way", flush=True)
        time.sleep(600)
os.link = link
SnapshotStore(LayoutStore.open(sys.argv[1])).prepare(_image_layers(sys.argv[1], "two"))
"""


def _image_layers(store_root: str, name: str) -> list[tuple[Descriptor, Digest]]:
    store = LayoutStore.open(store_root)
    manifest = parse_manifest(store.read_blob(refs.resolve(store, name).digest))
    config = ImageConfig.parse(store.read_blob(manifest.config.digest))
    return list(zip(manifest.layers, config.diff_ids, strict=True))


def test_a_killed_cloner_leaves_only_a_temp_dir_gc_removes(tmp_path: Path) -> None:
    big = tar_bytes({f"d{n // 500}/f{n}": os.urandom(64) for n in range(2000)}, mtime=MTIME)
    one = _image(tmp_path / "s", "one", [A, big])
    two = _image(tmp_path / "s", "two", [B, big])
    store = LayoutStore.open(tmp_path / "s")
    snaps = SnapshotStore(store)
    snaps.prepare([two[0]])
    first = snaps.prepare(one)[0]
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_CLONER, str(tmp_path / "s")], cwd=Path(__file__).parents[2],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "mid-way\n", proc.stderr
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    chain = chain_ids([d for _, d in two])[1]
    assert snaps.get(chain) is None                                  # nothing half-made is usable
    assert [n for n in os.listdir(snaps.root) if n.startswith(TEMP_PREFIX)]
    second = snaps.prepare(two)[0]                                   # a later prepare clones again
    assert _inodes(second) == _inodes(first) and len(_inodes(second)) == 2000
    collect(store)                                                   # and gc clears the leftovers
    assert not [n for n in os.listdir(snaps.root) if n.startswith(TEMP_PREFIX)]
    assert snaps.get(chain) == second and listing(second) == listing(first)


@pytest.fixture
def proxy(plain_registry: Registry) -> FaultProxy:
    p = FaultProxy(plain_registry.host)
    yield p  # type: ignore[misc]
    p.close()


def _push(tmp: Path, proxy: FaultProxy, name: str, raws: list[bytes]) -> list[dict[str, object]]:
    layout = tmp / f"layout-{name}"
    write_image(layout, "v", [_plain(r) for r in raws])
    imagetool("copy", "-q", "--dest-tls-verify=false", "--dest-compress-format", "zstd:chunked",
              f"oci:{layout}:v", f"{proxy.ref('app')}:{name}")
    raw = imagetool("inspect", "--raw", "--tls-verify=false", f"{proxy.ref('app')}:{name}").stdout
    return json.loads(raw)["layers"]  # type: ignore[no-any-return]


def _trees(store: Path, raws: list[bytes]) -> list[Path]:
    chains = chain_ids([Digest.of(r) for r in raws])
    return [store / "snapshots" / c.algorithm / c.hex / "fs" for c in chains]


def test_a_partial_pull_fetches_nothing_of_a_layer_the_store_has_on_another_parent(
        tmp_path: Path, proxy: FaultProxy) -> None:
    _push(tmp_path, proxy, "v1", [A, L])
    layers2 = _push(tmp_path, proxy, "v2", [B, L])
    store = tmp_path / "store"
    env = {"IMAGETOOL_STORE": str(store)}
    imagetool("copy", "--src-tls-verify=false", f"{proxy.ref('app')}:v1", "localhost/app:v1", env=env)
    proxy.records.clear()
    out = imagetool("copy", "--src-tls-verify=false", f"{proxy.ref('app')}:v2", "localhost/app:v2", env=env).stdout
    digest_l, digest_b = str(layers2[1]["digest"]), str(layers2[0]["digest"])
    assert [r for r in proxy.records if r.path.endswith(digest_l)] == []       # nothing asked for L
    assert proxy.response_bytes(path=digest_l) == 0
    assert [r for r in proxy.records if r.path.endswith(digest_b) and r.range]  # while B was pulled partially
    assert "partial:" in out and "in store on another parent: nothing fetched" in out
    first, second = _trees(store, [A, L])[1], _trees(store, [B, L])[1]
    assert _inodes(second) == _inodes(first)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    unpack(io.BytesIO(L), fresh, UnpackOptions(whiteouts="overlay"))
    assert listing(second) == listing(first)
    assert listing(second, times=False) == listing(fresh, times=False)


def test_rootless_clones_keep_the_subordinate_owners(tmp_path: Path, proxy: FaultProxy, rootless_user) -> None:  # type: ignore[no-untyped-def]
    _push(tmp_path, proxy, "v1", [A, L])
    layers2 = _push(tmp_path, proxy, "v2", [B, L])
    store = rootless_user.mkdtemp() / "store"
    env = {"IMAGETOOL_STORE": str(store)}
    for name in ("v1", "v2"):
        proxy.records.clear()
        rootless_user.imagetool("copy", "--src-tls-verify=false", f"{proxy.ref('app')}:{name}",
                                f"localhost/app:{name}", env=env)
    assert [r for r in proxy.records if r.path.endswith(str(layers2[1]["digest"]))] == []
    first, second = _trees(store, [A, L])[1], _trees(store, [B, L])[1]
    assert _inodes(second) == _inodes(first)
    got = listing(second)
    assert got == listing(first)
    assert got["srv/owned"][2:4] == (101233, 101233) and got["srv/second"][2] == 101234
    assert got["srv/pipe"][2] == 101233 and got["srv/link"][2] == 101233 and got["srv"][2] == 101233
    assert got["ro"][2] == rootless_user.uid and got["opt"][5] == {"user.overlay.opaque": b"y"}
    assert got["etc/gone"][0] == stat.S_IFCHR and got["etc/gone"][6] == 0
