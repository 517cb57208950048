""".dockerignore semantics, checked against the examples Docker's documentation gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagetool.build.dockerignore import Matcher, ignore_file, load, parse


def excluded(patterns: str, path: str) -> bool:
    return Matcher.from_text(patterns).excluded(path)


DOCS_EXAMPLE = "# comment\n*/temp*\n*/*/temp*\ntemp?\n"


@pytest.mark.parametrize("path,want", [
    # */temp*: files and directories starting with temp in any immediate subdirectory of the root
    ("somedir/temporary.txt", True),
    ("somedir/temp", True),
    ("somedir/temp/inside", True),       # everything under an excluded directory
    ("temporary.txt", False),            # not in a subdirectory
    # */*/temp*: two levels below the root
    ("somedir/subdir/temporary.txt", True),
    ("a/b/c/temporary.txt", False),
    # temp?: one-character extension in the root
    ("tempa", True),
    ("tempb", True),
    ("tempab", False),
    ("sub/x/y/tempa", False),
    ("comment", False),
])
def test_documented_example(path: str, want: bool) -> None:
    assert excluded(DOCS_EXAMPLE, path) is want


@pytest.mark.parametrize("patterns,path,want", [
    # ** matches any number of directories, including none
    ("**/*.go", "main.go", True),
    ("**/*.go", "a/b/c/x.go", True),
    ("**/*.go", "a/b/c/x.golang", False),
    ("a/**/z", "a/z", True),
    ("a/**/z", "a/b/c/z", True),
    ("a/**", "a/b/c", True),
    ("**", "anything/at/all", True),
    # exceptions: the last matching line wins
    ("*.md\n!README.md\n", "README.md", False),
    ("*.md\n!README.md\n", "CHANGES.md", True),
    ("*.md\n!README*.md\nREADME-secret.md\n", "README-secret.md", True),
    ("*.md\n!README*.md\nREADME-secret.md\n", "README-public.md", False),
    ("*.md\nREADME-secret.md\n!README*.md\n", "README-secret.md", False),
    ("*.md\nREADME-secret.md\n!README*.md\n", "other.md", True),
    # an exception re-includes a file inside an excluded directory
    ("build\n!build/keep.txt\n", "build/keep.txt", False),
    ("build\n!build/keep.txt\n", "build/other.txt", True),
    # patterns are relative to the context root: a leading / and ./ change nothing
    ("/secret.txt", "secret.txt", True),
    ("./secret.txt", "secret.txt", True),
    ("secret.txt", "sub/secret.txt", False),
    ("sub/../secret.txt", "secret.txt", True),
    # * and ? stop at /; character classes; escapes
    ("*", "a/b", True),                   # a matches, so a/b is excluded with it
    ("a/*", "a/b/c", True),
    ("a?c", "a/c", False),
    ("[a-c].txt", "b.txt", True),
    ("[!a-c].txt", "d.txt", True),
    ("[^a-c].txt", "b.txt", False),
    ("\\*.txt", "*.txt", True),
    ("\\*.txt", "a.txt", False),
    ("file.txt", "fileXtxt", False),      # . is literal
    ("  spaced.txt  ", "spaced.txt", True),
    ("#notcomment\n", "#notcomment", False),
    (" #x\n", "#x", True),                # only a # in the first column starts a comment
])
def test_semantics(patterns: str, path: str, want: bool) -> None:
    assert excluded(patterns, path) is want


def test_parse_keeps_order_and_exceptions() -> None:
    pats = parse("\ufeff*.md\n\n!README.md\n# c\n/abs/path\n")
    assert [(p.text, p.exclusion) for p in pats] == [("*.md", False), ("README.md", True), ("abs/path", False)]


def test_dockerfile_specific_ignore_file_wins(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / ".dockerignore").write_text("a\n")
    df = tmp_path / "app.Dockerfile"
    assert ignore_file(ctx, df) == ctx / ".dockerignore"
    assert load(ctx, df).excluded("a") and not load(ctx, df).excluded("b")
    (tmp_path / "app.Dockerfile.dockerignore").write_text("b\n")
    assert ignore_file(ctx, df) == tmp_path / "app.Dockerfile.dockerignore"
    assert load(ctx, df).excluded("b") and not load(ctx, df).excluded("a")
    assert not load(tmp_path / "ctx").excluded("b")


@pytest.mark.parametrize("patterns,directory,want", [
    ("node_modules\n", "node_modules", False),                 # no exception at all
    ("node_modules\n!src/keep\n", "node_modules", False),      # an exception elsewhere
    ("node_modules\n!node_modules/pkg/keep\n", "node_modules", True),
    ("node_modules\n!node_modules/pkg/keep\n", "node_modules/other", False),
    ("build\n!**/keep\n", "build/deep", True),
    ("build\n!b*/x\n", "build", True),
])
def test_excluded_directories_are_walked_only_when_an_exception_can_reach_in(
        patterns: str, directory: str, want: bool) -> None:
    assert Matcher.from_text(patterns).may_include_under(directory) is want
