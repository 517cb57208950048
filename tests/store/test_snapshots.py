"""SnapshotStore: each layer unpacked once, verified, atomic, shared, registered from upperdirs, gc'd."""

from __future__ import annotations

import gzip
import hashlib
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imagetool import media
from imagetool.descriptor import Descriptor
from imagetool.digest import Digest
from imagetool.errors import LayerError
from imagetool.manifest import ImageConfig, parse_manifest
from imagetool.store import refs
from imagetool.store.gc import collect
from imagetool.store.layout import TEMP_PREFIX, LayoutStore
from imagetool.store.snapshots import SnapshotStore, chain_ids
from tests.lib.hostile import entry, tar
from tests.lib.images import Layer, write_image

REPO = Path(__file__).resolve().parent.parent.parent


def _layer(raw: bytes) -> Layer:
    return Layer(gzip.compress(raw, mtime=0), Digest.of(raw), media.OCI_LAYER_GZIP)


BASE = tar(entry("etc/", b"5"), entry("etc/passwd", data=b"root:x:0:0\n"), entry("etc/gone", data=b"g"),
           entry("opt/", b"5"), entry("opt/old", data=b"o"))
TOP = tar(entry("etc/", b"5"), entry("etc/.wh.gone"), entry("opt/", b"5"), entry("opt/.wh..wh..opq"),
          entry("opt/new", data=b"n"))


def _image(store_root: Path, name: str, raws: list[bytes]) -> list[tuple[Descriptor, Digest]]:
    write_image(store_root, name, [_layer(r) for r in raws])
    store = LayoutStore.open(store_root)
    manifest = parse_manifest(store.read_blob(refs.resolve(store, name).digest))
    config = ImageConfig.parse(store.read_blob(manifest.config.digest))
    return list(zip(manifest.layers, config.diff_ids, strict=True))


def _big_layer(files: int) -> bytes:
    return tar(*[entry(f"d{n // 500}/f{n}", data=os.urandom(2000)) for n in range(files)])


def test_prepare_unpacks_once_top_first(tmp_path: Path) -> None:
    layers = _image(tmp_path / "s", "img", [BASE, TOP])
    snaps = SnapshotStore(LayoutStore.open(tmp_path / "s"))
    dirs = snaps.prepare(layers)
    chains = chain_ids([d for _, d in layers])
    assert chains[0] == layers[0][1]
    assert chains[1] == Digest("sha256", hashlib.sha256(f"{chains[0]} {layers[1][1]}".encode()).hexdigest())
    assert dirs == [snaps.path(chains[1]), snaps.path(chains[0])]  # top first: lowerdir order
    top, bottom = dirs
    assert (bottom / "etc" / "gone").read_bytes() == b"g"
    st = os.lstat(top / "etc" / "gone")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(top / "opt", "trusted.overlay.opaque") == b"y"
    before = os.lstat(top / "opt" / "new").st_ino
    assert snaps.prepare(layers) == dirs
    assert os.lstat(top / "opt" / "new").st_ino == before  # shared, not unpacked again
    assert not [n for n in os.listdir(snaps.root) if n.startswith(TEMP_PREFIX)]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting overlayfs needs root")
def test_snapshots_are_overlay_lowerdirs(tmp_path: Path) -> None:
    layers = _image(tmp_path / "s", "img", [BASE, TOP])
    lowers = SnapshotStore(LayoutStore.open(tmp_path / "s")).prepare(layers)
    merged = tmp_path / "merged"
    merged.mkdir()
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={':'.join(map(str, lowers))}",
                    str(merged)], check=True)
    try:
        assert sorted(os.listdir(merged / "etc")) == ["passwd"]
        assert os.listdir(merged / "opt") == ["new"]
    finally:
        subprocess.run(["umount", str(merged)], check=True)


def test_corrupt_blob_leaves_no_snapshot(tmp_path: Path) -> None:
    layers = _image(tmp_path / "s", "img", [BASE])
    store = LayoutStore.open(tmp_path / "s")
    path = store.blob_path(layers[0][0].digest)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x55  # gzip trailer: the tar may come out whole, the digest cannot
    os.chmod(path, 0o644)
    path.write_bytes(bytes(data))
    snaps = SnapshotStore(store)
    with pytest.raises(LayerError) as caught:
        snaps.prepare(layers)
    assert "\n" not in str(caught.value)
    assert snaps.get(layers[0][1]) is None
    assert not [n for n in os.listdir(snaps.root) if n.startswith(TEMP_PREFIX)]


def test_wrong_diff_id_is_refused(tmp_path: Path) -> None:
    layers = _image(tmp_path / "s", "img", [BASE])
    wrong = Digest.of(b"something else")
    snaps = SnapshotStore(LayoutStore.open(tmp_path / "s"))
    with pytest.raises(LayerError, match="diff_id"):
        snaps.prepare([(layers[0][0], wrong)])
    assert snaps.get(wrong) is None


def test_hostile_layer_in_a_snapshot_is_refused(tmp_path: Path) -> None:
    layers = _image(tmp_path / "s", "img", [tar(entry("../../../../escaped", data=b"x"))])
    snaps = SnapshotStore(LayoutStore.open(tmp_path / "s"))
    with pytest.raises(Exception, match="outside the target"):
        snaps.prepare(layers)
    assert not list(tmp_path.rglob("escaped"))


_UNPACKER = """
import sys
from imagetool.store.layout import LayoutStore
from imagetool.store.snapshots import SnapshotStore
from imagetool.store import refs
from imagetool.manifest import ImageConfig, parse_manifest
store = LayoutStore.open(sys.argv[1])
m = parse_manifest(store.read_blob(refs.resolve(store, "img").digest))
c = ImageConfig.parse(store.read_blob(m.config.digest))
print(SnapshotStore(store).prepare(list(zip(m.layers, c.diff_ids)))[0])
"""


def _unpacker(store: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", _UNPACKER, str(store)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_killed_unpacker_leaves_no_usable_snapshot(tmp_path: Path) -> None:
    layers = _image(tmp_path / "s", "img", [_big_layer(6000)])
    snaps = SnapshotStore(LayoutStore.open(tmp_path / "s"))
    proc = _unpacker(tmp_path / "s")
    deadline = time.monotonic() + 60
    seen = 0
    while time.monotonic() < deadline and seen < 200:  # wait until it is mid-way through the layer
        temps = list(snaps.root.glob(f"{TEMP_PREFIX}*/fs/d0")) if snaps.root.exists() else []
        seen = len(os.listdir(temps[0])) if temps else 0
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert seen >= 200, "the unpacker finished or never started before it could be killed"
    assert snaps.get(layers[0][1]) is None                      # nothing half-made is usable
    assert [n for n in os.listdir(snaps.root) if n.startswith(TEMP_PREFIX)]
    tree = snaps.prepare(layers)[0]                              # a later prepare does the work again
    assert len(list(tree.rglob("f*"))) == 6000
    collect(LayoutStore.open(tmp_path / "s"))                    # and gc clears the leftovers
    assert not [n for n in os.listdir(snaps.root) if n.startswith(TEMP_PREFIX)]
    assert snaps.get(layers[0][1]) == tree


def test_concurrent_unpackers_share_one_snapshot(tmp_path: Path) -> None:
    layers = _image(tmp_path / "s", "img", [_big_layer(1500)])
    procs = [_unpacker(tmp_path / "s") for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    paths = {o[0].strip() for o in outs}
    snaps = SnapshotStore(LayoutStore.open(tmp_path / "s"))
    assert paths == {str(snaps.path(layers[0][1]))}
    assert os.listdir(snaps.root / "sha256") == [layers[0][1].hex]
    assert not [n for n in os.listdir(snaps.root) if n.startswith(TEMP_PREFIX)]


def test_register_moves_an_upperdir_in(tmp_path: Path) -> None:
    layers = _image(tmp_path / "s", "img", [BASE, TOP])
    store = LayoutStore.open(tmp_path / "s")
    snaps = SnapshotStore(store)
    bottom = snaps.prepare(layers[:1])[0]
    upper = tmp_path / "upper"
    upper.mkdir()
    (upper / "opt").mkdir()
    (upper / "opt" / "new").write_bytes(b"n")
    marker = os.lstat(upper / "opt" / "new").st_ino
    registered = snaps.register(upper, layers[1][1], layers[0][1], layers[1][0].digest)
    assert not upper.exists()
    assert os.lstat(registered / "opt" / "new").st_ino == marker     # moved, not copied or unpacked
    os.unlink(store.blob_path(layers[1][0].digest))                  # no blob needed any more
    assert snaps.prepare(layers) == [registered, bottom]


def test_prune_drops_snapshots_no_image_uses(tmp_path: Path) -> None:
    kept = _image(tmp_path / "s", "kept", [BASE])
    dropped = _image(tmp_path / "s", "dropped", [BASE, TOP])
    store = LayoutStore.open(tmp_path / "s")
    snaps = SnapshotStore(store)
    snaps.prepare(dropped)
    assert len(snaps.chains()) == 2
    assert collect(store).snapshots_removed == [] and len(snaps.chains()) == 2  # both in use
    refs.remove_name(store, "dropped")
    top_chain = chain_ids([d for _, d in dropped])[1]
    assert collect(store, dry_run=True).snapshots_removed == [top_chain] and len(snaps.chains()) == 2
    result = collect(store)
    assert result.snapshots_removed == [top_chain]
    assert snaps.chains() == [kept[0][1]] and snaps.get(kept[0][1]) is not None
    refs.remove_name(store, "kept")
    collect(store)
    assert snaps.chains() == []
