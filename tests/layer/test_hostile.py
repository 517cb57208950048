"""The hostile layer corpus: each archive is refused with one clear line or neutralised, and nothing
outside the target changes (a sentinel directory beside it is compared before and after)."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest

from imagetool.errors import ImagetoolError, describe as describe_error
from imagetool.layer.unpack import UnpackOptions, unpack
from tests.lib.hostile import corpus
from tests.lib.layertree import describe

NAMES = [c.name for c in corpus(Path("/placeholder/sentinel"))]


def _setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    box = tmp_path / "box"
    target, sentinel = box / "target", box / "sentinel"
    target.mkdir(parents=True)
    sentinel.mkdir()
    (sentinel / "secret").write_bytes(b"do not touch\n")
    os.symlink("secret", sentinel / "secret-link")
    return box, target, sentinel


def test_corpus_is_large_enough() -> None:
    assert len(NAMES) >= 15 and len(set(NAMES)) == len(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_hostile_layer(tmp_path: Path, name: str) -> None:
    box, target, sentinel = _setup(tmp_path)
    case = {c.name: c for c in corpus(sentinel)}[name]
    before = describe(sentinel)
    options = UnpackOptions(whiteouts=case.whiteouts, devices=case.devices)
    if case.outcome == "refused":
        with pytest.raises(ImagetoolError) as caught:
            unpack(io.BytesIO(case.data), target, options)
        assert isinstance(caught.value, case.error), (type(caught.value), caught.value)
        line = describe_error(caught.value)
        assert line and "\n" not in line and len(line) < 400, line
    else:
        stats = unpack(io.BytesIO(case.data), target, options)
        for rel in case.expect:
            assert os.path.lexists(target / rel), rel
        if case.devices is False:
            assert not os.path.lexists(target / "dev" / "null")
            assert any("device node" in s for s in stats.skipped)
    # nothing outside the target: the sentinel is as it was, no new names beside or above the target
    assert describe(sentinel) == before
    assert sorted(os.listdir(box)) == ["sentinel", "target"]
    assert sorted(os.listdir(tmp_path)) == ["box", "local-store"] or sorted(os.listdir(tmp_path)) == ["box"]
    # and nothing inside the target is a hardlink to a file outside it
    secret_ino = os.lstat(sentinel / "secret").st_ino
    for dirpath, dirnames, filenames in os.walk(target):
        for n in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, n))
            assert st.st_ino != secret_ino


def test_overlay_xattrs_are_never_taken_from_a_layer(tmp_path: Path) -> None:
    box, target, sentinel = _setup(tmp_path)
    case = {c.name: c for c in corpus(sentinel)}["overlay-xattr-injection"]
    stats = unpack(io.BytesIO(case.data), target, UnpackOptions())
    names = os.listxattr(target / "d")
    assert not [n for n in names if ".overlay." in n], names
    assert sum("overlayfs's own" in s for s in stats.skipped) == 3


def test_symlink_then_overwrite_replaces_the_link(tmp_path: Path) -> None:
    box, target, sentinel = _setup(tmp_path)
    case = {c.name: c for c in corpus(sentinel)}["symlink-then-overwrite"]
    unpack(io.BytesIO(case.data), target)
    assert stat.S_ISREG(os.lstat(target / "f").st_mode)
    assert (target / "f").read_bytes() == b"overwritten"
    assert (sentinel / "secret").read_bytes() == b"do not touch\n"


def test_whiteout_through_symlink_stays_inside(tmp_path: Path) -> None:
    """Overlay mode: the whiteout lands under the target, where the symlink resolves inside the root."""
    box, target, sentinel = _setup(tmp_path)
    case = {c.name: c for c in corpus(sentinel)}["whiteout-through-symlink"]
    unpack(io.BytesIO(case.data), target, UnpackOptions(whiteouts="overlay"))
    inside = target / str(sentinel).lstrip("/") / "secret"
    assert stat.S_ISCHR(os.lstat(inside).st_mode) and os.lstat(inside).st_rdev == 0
    assert (sentinel / "secret").read_bytes() == b"do not touch\n"


def test_hostile_base_image_fails_a_build_with_one_line(tmp_path: Path, local_store: Path) -> None:
    """Through the real CLI: FROM an image whose layer climbs out is refused, the error is one line."""
    import gzip

    from imagetool import media
    from imagetool.digest import Digest
    from tests.lib.cli import imagetool
    from tests.lib.hostile import entry, tar
    from tests.lib.images import Layer, write_image

    raw = tar(entry("etc/", b"5"), entry("../../../../../../escaped-by-layer", data=b"x"))
    write_image(local_store, "docker.io/library/evil:latest",
                [Layer(gzip.compress(raw), Digest.of(raw), media.OCI_LAYER_GZIP)])
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM evil\nCOPY Dockerfile /\n")
    before = (local_store / "index.json").read_bytes()
    proc = imagetool("build", "--pull", "never", "-t", "victim", str(ctx), check=False)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "points outside the target directory" in lines[0], proc.stderr
    assert (local_store / "index.json").read_bytes() == before
    assert not list(tmp_path.rglob("escaped-by-layer")) and not Path("/escaped-by-layer").exists()
    snapshots = local_store / "snapshots"
    assert not snapshots.exists() or not [p for p in snapshots.rglob("fs")]
