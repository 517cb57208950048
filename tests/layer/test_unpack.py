"""unpack against GNU tar: the same archive extracted by both gives the same tree, member by member
(type, mode incl. setuid/setgid/sticky, owner, content, link target, device numbers, xattrs, mtime,
hardlink groups)."""

from __future__ import annotations

import gzip
import io
import os
import stat
import subprocess
from pathlib import Path

import pytest
import zstandard

from imagetool.errors import LayerError
from imagetool.layer.unpack import UnpackOptions, unpack, unpack_layer
from tests.lib.hostile import entry, tar
from tests.lib.layertree import describe, gnu_tar, gnu_untar, make_tree


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tree") / "src"
    make_tree(root, files=400)
    return root


def _compare(a: dict, b: dict) -> None:
    diff = {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}
    assert not diff, diff


@pytest.mark.parametrize("fmt", ["pax", "gnu"])
def test_unpack_equals_gnu_tar(tree: Path, tmp_path: Path, fmt: str) -> None:
    archive = tmp_path / "layer.tar"
    if fmt == "pax":
        gnu_tar(tree, archive)
    else:  # GNU format: long names as 'L'/'K' members, no xattrs
        subprocess.run(["tar", "--format=gnu", "--sort=name", "--numeric-owner", "-C", str(tree), "-cf",
                        str(archive), "."], check=True)
    theirs, ours = tmp_path / "gnu", tmp_path / "ours"
    gnu_untar(archive, theirs)
    ours.mkdir()
    with open(archive, "rb") as f:
        stats = unpack(f, ours, UnpackOptions(whiteouts="keep"))
    expected = describe(theirs)
    _compare(expected, describe(ours))
    assert stats.entries == len(expected) + 1  # + the "./" member
    # the tree really has what the comparison is about
    kinds = {v[0] for v in expected.values()}
    assert {stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK, stat.S_IFIFO} <= kinds
    assert expected["special/setuid"][1] == 0o4755
    assert expected["special/sticky"][1] == 0o1777
    assert expected["special/hard-b"][7] == expected["special/hard-a"][7] is not None
    if fmt == "pax":
        assert dict(expected["special/xattr"][5])["user.comment"] == b"hello"


@pytest.mark.skipif(os.geteuid() != 0, reason="device nodes and files of other owners need root")
def test_unpack_keeps_devices_and_owners(tree: Path, tmp_path: Path) -> None:
    """As root the tree has devices and other ids (make_tree adds them), and unpack restores them."""
    archive = gnu_tar(tree, tmp_path / "layer.tar")
    ours = tmp_path / "ours"
    ours.mkdir()
    with open(archive, "rb") as f:
        unpack(f, ours, UnpackOptions(whiteouts="keep"))
    got = describe(ours)
    assert got["special/null"][0] == stat.S_IFCHR and got["special/null"][4] == (1, 3)
    assert got["special/loop"][0] == stat.S_IFBLK and got["special/loop"][4] == (7, 0)
    assert got["special/setgid"][1:4] == (0o2711, 1234, 5678)
    assert got["special/rel-link"][2:4] == (42, 43)


def test_unpack_matches_source_tree(tree: Path, tmp_path: Path) -> None:
    """The tree GNU tar archived is what comes out (so the comparison above is not vacuous)."""
    archive = gnu_tar(tree, tmp_path / "layer.tar")
    ours = tmp_path / "ours"
    ours.mkdir()
    with open(archive, "rb") as f:
        unpack(f, ours, UnpackOptions(whiteouts="keep"))
    _compare(describe(tree), describe(ours))


@pytest.mark.parametrize("algorithm", ["gzip", "zstd"])
def test_unpack_layer_decompresses(tree: Path, tmp_path: Path, algorithm: str) -> None:
    raw = gnu_tar(tree, tmp_path / "layer.tar").read_bytes()
    blob = gzip.compress(raw) if algorithm == "gzip" else zstandard.ZstdCompressor().compress(raw)
    ours = tmp_path / "ours"
    ours.mkdir()
    unpack_layer(io.BytesIO(blob), ours, UnpackOptions(whiteouts="keep"))
    _compare(describe(tree), describe(ours))


def test_corrupt_gzip_is_a_typed_error(tree: Path, tmp_path: Path) -> None:
    blob = bytearray(gzip.compress(gnu_tar(tree, tmp_path / "layer.tar").read_bytes()))
    blob[len(blob) // 2] ^= 0xFF
    (tmp_path / "t").mkdir()
    with pytest.raises(Exception) as caught:
        unpack_layer(io.BytesIO(bytes(blob)), tmp_path / "t")
    from imagetool.errors import ImagetoolError

    assert isinstance(caught.value, ImagetoolError)


def test_apply_mode_deletes_what_whiteouts_name(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    lower = tar(entry("etc/", b"5"), entry("etc/keep", data=b"k"), entry("etc/gone", data=b"g"),
                entry("opt/", b"5"), entry("opt/old", data=b"o"), entry("opt/sub/", b"5"))
    upper = tar(entry("etc/.wh.gone"), entry("opt/new", data=b"n"), entry("opt/.wh..wh..opq"),
                entry("etc/.wh.never-there"))
    unpack(io.BytesIO(lower), root, UnpackOptions(whiteouts="apply"))
    unpack(io.BytesIO(upper), root, UnpackOptions(whiteouts="apply"))
    assert sorted(os.listdir(root / "etc")) == ["keep"]
    assert sorted(os.listdir(root / "opt")) == ["new"]  # opaque: the lower layers' entries are gone


def test_overlay_mode_makes_overlay_whiteouts(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    layer = tar(entry("etc/", b"5"), entry("etc/.wh.gone"), entry("opt/", b"5"), entry("opt/.wh..wh..opq"),
                entry("opt/new", data=b"n"), entry("same", data=b"s"), entry(".wh.same"))
    unpack(io.BytesIO(layer), root, UnpackOptions(whiteouts="overlay"))
    st = os.lstat(root / "etc" / "gone")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(root / "opt", "trusted.overlay.opaque") == b"y"
    assert (root / "same").read_bytes() == b"s"  # a whiteout hides lower layers only, not its own layer
    assert not any(n.startswith(".wh.") for _, d, f in os.walk(root) for n in d + f)


def test_readonly_and_replaced_members(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    layer = tar(entry("ro/", b"5", mode=0o555), entry("ro/f", data=b"1", mode=0o444),
                entry("dup", data=b"first"), entry("dup", data=b"second"),
                entry("x/", b"5"), entry("x/child", data=b"c"), entry("x", data=b"now a file"))
    unpack(io.BytesIO(layer), root)
    assert stat.S_IMODE(os.lstat(root / "ro").st_mode) == 0o555
    assert (root / "ro" / "f").read_bytes() == b"1"
    assert (root / "dup").read_bytes() == b"second"
    assert (root / "x").read_bytes() == b"now a file"


def test_hardlink_to_missing_target_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(LayerError, match="not in the layer"):
        unpack(io.BytesIO(tar(entry("hl", b"1", linkname="nowhere"))), tmp_path)


def test_apply_mode_matches_umoci_on_a_layer_stack(tree: Path, tmp_path: Path) -> None:
    """Two layers (a varied tree, then deletions, an opaque directory and replacements) applied in order:
    the flat rootfs equals what `umoci unpack` makes of the same image."""
    from imagetool import media
    from imagetool.digest import Digest
    from tests.lib.bundles import umoci_unpack
    from tests.lib.images import Layer, write_image

    lower = gnu_tar(tree, tmp_path / "lower.tar").read_bytes()
    upper = tar(entry("d0/", b"5", mode=0o755), entry("d0/.wh.s1"), entry("d1/", b"5", mode=0o755),
                entry("d1/.wh..wh..opq"), entry("d1/fresh", data=b"fresh"), entry("special/", b"5", mode=0o755),
                entry("special/.wh.hard-a"), entry("special/rel-link", data=b"now a file"))
    layers = [Layer(gzip.compress(raw), Digest.of(raw), media.OCI_LAYER_GZIP) for raw in (lower, upper)]
    write_image(tmp_path / "layout", "stack", layers)
    rootfs = umoci_unpack(tmp_path / "layout", "stack", tmp_path / "bundle") / "rootfs"
    ours = tmp_path / "ours"
    ours.mkdir()
    for layer in layers:
        unpack_layer(io.BytesIO(layer.blob), ours, UnpackOptions(whiteouts="apply"))
    theirs_tree, ours_tree = describe(rootfs, times=False), describe(ours, times=False)
    _compare(theirs_tree, ours_tree)
    assert "d0/s1" not in ours_tree and os.listdir(ours / "d1") == ["fresh"]
    assert "special/hard-a" not in ours_tree and ours_tree["special/hard-b"][0] == stat.S_IFREG
