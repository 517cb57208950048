"""tmpdirs.spread_children: the build's work directory marked as the top of unrelated trees (chattr +T)."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from imagetool.tmpdirs import spread_children


def _attrs(path: Path) -> str:
    return subprocess.run(["lsattr", "-d", str(path)], check=True, capture_output=True, text=True).stdout.split()[0]


def test_an_ext4_directory_gets_the_topdir_flag_and_keeps_its_others(tmp_path: Path) -> None:
    work = tmp_path / "work"  # the test machine's /tmp is ext4, as build work directories are
    work.mkdir()
    before = _attrs(work)
    assert "T" not in before
    assert spread_children(work) is True
    after = _attrs(work)
    assert "T" in after and after.replace("T", "-") == before  # only T was added
    assert spread_children(work) is True  # marking twice changes nothing
    assert _attrs(work) == after


def test_where_there_is_no_such_flag_it_is_only_a_hint(tmp_path: Path) -> None:
    with tempfile.TemporaryDirectory(dir="/dev/shm") as shm:  # tmpfs has no file flags
        assert spread_children(shm) is False
    assert spread_children(tmp_path / "missing") is False
    (tmp_path / "file").write_text("x")
    assert spread_children(tmp_path / "file") is False  # not a directory


def test_a_build_marks_its_work_directory(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The executor marks the directory its upperdirs are made in (before any step)."""
    from imagetool.build import executor

    marked: list[str] = []
    monkeypatch.setattr(executor, "spread_children", lambda path: marked.append(str(path)) or True)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY a /a\n")
    (ctx / "a").write_text("a\n")
    from imagetool.store.layout import LayoutStore

    store = LayoutStore.create(tmp_path / "store")
    (tmp_path / "tmp").mkdir()
    executor.build(executor.BuildOptions(dockerfile=ctx / "Dockerfile", context=ctx, store=store, tags=["t"],
                                         tmpdir=str(tmp_path / "tmp"), output=lambda _line: None))
    assert len(marked) == 1 and Path(marked[0]).parent == tmp_path / "tmp"
