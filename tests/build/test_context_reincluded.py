"""A directory .dockerignore excludes is still a COPY/ADD source when a `!` pattern keeps something under it.

BuildKit sends the parents of every path it sends, so after `**` and `!folder1/file1` the context
holds `folder1` with `file1` alone, and `ADD folder1 /f1` copies that one file (buildah's
conformance case dockerignore/allowlist/subdir-file, compared there with Docker).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from imagetool.build.context import BuildContext, SourceNotFound
from tests.build.test_context import make
from tests.build.test_fidelity import rootfs
from tests.lib.buildah import fs_tree
from tests.lib.cli import imagetool


def _context(tmp_path: Path) -> Path:
    return make(tmp_path / "ctx", {
        "folder1/file1": "one\n", "folder1/file2": "two\n", "folder2/file1": "other\n",
        "deep/a/b/kept": "kept\n", "deep/a/dropped": "dropped\n",
        ".dockerignore": "**\n!folder1/file1\n!deep/a/b\n",
    })


def test_excluded_directory_with_a_kept_file_is_a_source(tmp_path: Path) -> None:
    ctx = BuildContext(_context(tmp_path))
    [source] = ctx.sources(["folder1"])
    assert source.rel == "folder1" and source.is_dir
    assert [e.rel for e in ctx.walk(source)] == ["", "file1"]
    [deep] = ctx.sources(["deep/a"])
    assert [e.rel for e in ctx.walk(deep)] == ["", "b", "b/kept"]
    with pytest.raises(SourceNotFound):  # nothing under it is kept: it is not in the context
        ctx.sources(["folder2"])
    with pytest.raises(SourceNotFound):
        ctx.sources(["folder1/file2"])


def test_add_of_the_directory_copies_what_is_kept(tmp_path: Path, local_store: Path) -> None:
    ctx = _context(tmp_path)
    (ctx / "Dockerfile").write_text("FROM scratch\nADD folder1 /f1\nCOPY deep/a /a\n")
    imagetool("build", "-t", "reincluded", str(ctx))
    tree = fs_tree(rootfs(local_store, "reincluded", tmp_path / "b"))
    assert {p: v[5] for p, v in tree.items() if v[0] == "f"} == {"/f1/file1": b"one\n", "/a/b/kept": b"kept\n"}
