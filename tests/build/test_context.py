"""The build context: source resolution, refusal of paths outside it, .dockerignore, content hashes."""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

import pytest

from imagetool.build.context import BuildContext, SourceNotFound, clean
from imagetool.errors import UnsafeContent
from tests.lib.cli import tool

CASE = Path(__file__).resolve().parents[2] / "testdata" / "dockerfiles" / "copy-context"


def make(root: Path, files: dict[str, str | None]) -> Path:
    for name, content in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            p.mkdir(exist_ok=True)
        elif content.startswith("->"):
            os.symlink(content[2:], p)
        else:
            p.write_text(content)
    return root


def rels(ctx: BuildContext, patterns: list[str]) -> list[str]:
    return [s.rel for s in ctx.sources(patterns)]


def test_sources_globs_and_directories() -> None:
    ctx = BuildContext(CASE / "ctx", CASE / "app.Dockerfile")
    assert rels(ctx, ["*.txt"]) == ["a.txt", "b.txt"]          # draft.txt is ignored
    assert rels(ctx, ["/src/", "./docs/read me.md"]) == ["src", "docs/read me.md"]
    assert rels(ctx, ["d*/*.md"]) == ["docs/read me.md"]
    assert rels(ctx, ["[ab].txt"]) == ["a.txt", "b.txt"]
    src = ctx.sources(["src"])[0]
    assert src.is_dir
    assert [e.rel for e in ctx.walk(src)] == ["", "main.py", "sub", "sub/helper.py"]  # *.key, node_modules out


def test_missing_or_excluded_source_is_an_error() -> None:
    ctx = BuildContext(CASE / "ctx", CASE / "app.Dockerfile")
    with pytest.raises(SourceNotFound, match="draft.txt: not found in the build context or excluded"):
        ctx.sources(["draft.txt"])
    with pytest.raises(SourceNotFound):
        ctx.sources(["nothing-*.bin"])
    with pytest.raises(SourceNotFound):
        ctx.sources(["no/such/file"])


@pytest.mark.parametrize("path", ["..", "../x", "a/../../x", "/../../etc/passwd"])
def test_paths_outside_the_context_are_refused(tmp_path: Path, path: str) -> None:
    ctx = BuildContext(make(tmp_path / "ctx", {"a/f": "x"}))
    with pytest.raises(UnsafeContent, match="outside the build context"):
        ctx.sources([path])


def test_clean_keeps_inside_paths() -> None:
    assert clean("/a/./b/../c") == "a/c"
    assert clean("a/b/..") == "a"
    assert clean("/") == "."


def test_symlinks_resolve_inside_the_root(tmp_path: Path) -> None:
    secret = tmp_path / "outside.txt"
    secret.write_text("host secret")
    ctx = BuildContext(make(tmp_path / "ctx", {
        "real/file": "in", "rel": "->real", "abs": "->/real", "up": "->../../../outside.txt",
        "escape": f"->{secret}", "loop": "->loop",
    }))
    assert rels(ctx, ["rel/file", "abs/file"]) == ["real/file", "real/file"]
    # a link that points out of the context lands inside it (where nothing is): never the host's file
    with pytest.raises(SourceNotFound):
        ctx.sources(["up"])
    with pytest.raises(SourceNotFound):
        ctx.sources(["escape"])
    with pytest.raises(UnsafeContent, match="symbolic links"):
        ctx.sources(["loop"])


def test_symlinks_inside_a_copied_directory_stay_links(tmp_path: Path) -> None:
    ctx = BuildContext(make(tmp_path / "ctx", {"d/f": "x", "d/l": "->/etc/passwd"}))
    entries = {e.rel: e for e in ctx.walk(ctx.sources(["d"])[0])}
    assert os.path.islink(entries["l"].path)


def test_content_hash_follows_content_not_times(tmp_path: Path) -> None:
    root = make(tmp_path / "ctx", {"d/a": "1", "d/b": "2", "d/l": "->a", "e": "3"})
    ctx = BuildContext(root)
    first = ctx.content_hash(ctx.sources(["d"]))
    os.utime(root / "d" / "a", (1, 1))
    assert BuildContext(root).content_hash(BuildContext(root).sources(["d"])) == first
    for change in (lambda: (root / "d" / "a").write_text("changed"),
                   lambda: os.chmod(root / "d" / "b", 0o600),
                   lambda: (os.unlink(root / "d" / "l"), os.symlink("b", root / "d" / "l")),
                   lambda: (root / "d" / "new").write_text(""),
                   lambda: os.rename(root / "d" / "new", root / "d" / "renamed")):
        change()
        fresh = BuildContext(root)
        now = fresh.content_hash(fresh.sources(["d"]))
        assert now != first
        first = now
    assert BuildContext(root).content_hash(BuildContext(root).sources(["e"])) != first


def test_ignored_files_do_not_change_the_hash(tmp_path: Path) -> None:
    root = make(tmp_path / "ctx", {"d/a": "1", ".dockerignore": "d/*.log\n"})
    before = BuildContext(root).content_hash(BuildContext(root).sources(["d"]))
    (root / "d" / "x.log").write_text("noise")
    assert BuildContext(root).content_hash(BuildContext(root).sources(["d"])) == before


IGNORE_TREE = {
    "README.md": "r", "CHANGES.md": "c", "README-secret.md": "s", "build/keep.txt": "k",
    "build/other.txt": "o", "a/b/x.go": "g", "a/y.go": "g", "main.go": "g", "docs/temp1": "t",
    "docs/keep": "k", "tempa": "t", "tempab": "t", "deep/x/y/z.txt": "z",
    ".dockerignore": "*.md\n!README*.md\nREADME-secret.md\nbuild\n!build/keep.txt\n**/*.go\n!a/y.go\n"
                     "*/temp*\ntemp?\ndeep/**/*.txt\n",
    "Dockerfile": "FROM scratch\nCOPY . /\n",
}


def test_context_walk_matches_buildah(tmp_path: Path) -> None:
    """What `COPY . /` takes from a context with a .dockerignore, compared with buildah's build of it."""
    root = make(tmp_path / "ctx", IGNORE_TREE)
    ctx = BuildContext(root)
    ours = set()
    for e in ctx.walk(ctx.sources(["."])[0]):
        if e.rel:
            ours.add(e.rel)
            parent = posixpath.dirname(e.rel)
            while parent:
                ours.add(parent)
                parent = posixpath.dirname(parent)
    storage = ["buildah", "--root", str(tmp_path / "root"), "--runroot", str(tmp_path / "runroot"),
               "--storage-driver", "vfs"]
    tool([*storage, "bud", "-q", "--layers=false", "-t", "ignore-test", str(root)], timeout=120)
    tool([*storage, "from", "--name", "c", "ignore-test"], timeout=60)
    mnt = Path(tool([*storage, "mount", "c"], timeout=60).stdout.strip())
    theirs = {str(p.relative_to(mnt)) for p in mnt.rglob("*")}
    tool([*storage, "rm", "c"], timeout=60)
    assert ours == theirs
    assert "README.md" in ours and "README-secret.md" not in ours and "build/keep.txt" in ours
