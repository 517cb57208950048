"""One corpus of hostile paths, resolved by imagetool.pathresolve and through each of its four callers.

Every caller must give the same confined answer as the one implementation. Where a caller's
documented input policy differs, the case says so, and the test checks that policy too:
- the build context, the layered root view and the unpacker clean ".." lexically before any
  symlink is followed (as BuildKit's COPY and tar do), so "link/.." is the link's directory there
  and the kernel's answer elsewhere (`lexical`); the build context and the unpacker refuse a
  path whose ".." climbs above the root lexically, the root view stops at the root;
- a missing part is kept as given by the core, secure_join and the root view, is an error
  for the build context (SourceNotFound) and, outside create mode, for the unpacker;
- the unpacker walks directories only (its last part is never followed, and with follow
  every part must be a directory); secure_join and the build context always follow the last part;
- the unpacker stops after 40 symlinks as the kernel does, the others after 255 as runc does.
"""

from __future__ import annotations

import errno
import os
import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from imagetool import pathresolve
from imagetool.build.context import BuildContext, SourceNotFound
from imagetool.build.rootview import RootView
from imagetool.errors import LayerError, UnsafeContent
from imagetool.layer.safepath import Resolver, clean
from imagetool.runtime.paths import secure_join

LOOP = "ELOOP"

#: the tree every caller resolves in: path -> "dir", "file" or "->target"
TREE: list[tuple[str, str]] = [
    ("dir", "dir"),
    ("dir/sub", "dir"),
    ("dir/file", "file"),
    ("file", "file"),
    ("abs", "->/dir"),                              # an absolute link: restarts at the root
    ("rel", "->dir/sub"),                           # a relative link
    ("dotted", "->./dir/./sub/"),                   # "." and a trailing slash in a target
    ("up", "->../../../../dir"),                    # out of the root through "..": stops at the root
    ("dir/upfile", "->../../../../../file"),
    ("dir/parent", "->.."),
    ("dir/lnk", "->sub"),
    ("dir/sub/rootlink", "->/"),
    ("escape", "->/../../dir/sub"),                 # absolute and climbing: still the root's /dir/sub
    ("hop1", "->hop2"),                             # a link to a link to a link
    ("hop2", "->/abs"),
    ("hopup", "->dir/../abs/../file"),              # ".." in a target after a link in it
    ("loop1", "->loop2"),
    ("loop2", "->loop1"),
    ("self", "->self"),
    ("dangling", "->/nowhere/x"),
    *[(f"k{i}", f"->k{i + 1}") for i in range(1, 41)], ("k41", "->/dir"),      # k1: 41 links, k2: 40
    *[(f"m{i}", f"->m{i + 1}") for i in range(1, 256)], ("m256", "->/dir"),    # m1: 256 links
]


@dataclass(frozen=True)
class Case:
    path: str
    #: the answer ("/..." under the root) of the kernel's walk, or LOOP
    want: str
    #: what the answer names: dir, file, link (the unfollowed last part) or missing
    kind: str = "dir"
    follow: bool = True
    #: how many symlinks the walk follows, where that matters (the chains)
    links: int = 0
    #: the answer when ".." is cleaned lexically first, where it differs
    lexical: str | None = None


CASES = [
    # plain and absolute
    Case("", "/"), Case("/", "/"), Case(".", "/"), Case("dir/sub", "/dir/sub"), Case("/dir/sub", "/dir/sub"),
    Case("dir/file", "/dir/file", "file"),
    # "." and empty components, trailing slashes
    Case(".//dir/./sub//.", "/dir/sub"), Case("dir/sub/", "/dir/sub"), Case("abs/", "/dir"),
    Case("dotted", "/dir/sub"),
    # ".." chains
    Case("dir/sub/../../dir/./sub/..", "/dir"), Case("../../dir", "/dir", lexical="refused"),
    Case("/../../../file", "/file", "file", lexical="refused"),
    Case("dir/../../file", "/file", "file", lexical="refused"),
    Case("abs/../../..", "/", lexical="refused"),
    # absolute links reset to the root; links to links
    Case("abs", "/dir"), Case("abs/sub", "/dir/sub"), Case("abs/file", "/dir/file", "file"),
    Case("dir/sub/rootlink/file", "/file", "file"), Case("dir/sub/rootlink/dir/sub/rootlink", "/"),
    Case("hop1", "/dir"), Case("hop1/sub", "/dir/sub"), Case("rel", "/dir/sub"),
    Case("escape", "/dir/sub"), Case("hopup", "/file", "file"),
    # links pointing out of the root through ".."
    Case("up", "/dir"), Case("up/sub", "/dir/sub"), Case("dir/upfile", "/file", "file"),
    Case("dir/parent/dir/parent/file", "/file", "file"),
    # ".." after a link: the link's target's parent, or lexically the link's own directory
    Case("rel/..", "/dir", lexical="/"), Case("rel/../file", "/dir/file", "file", lexical="/file"),
    Case("dir/parent/../file", "/file", "file", lexical="/dir/file"),
    # loops and long chains
    Case("loop1", LOOP), Case("self", LOOP), Case("loop1/x", LOOP), Case("dir/../self/sub", LOOP),
    Case("k2", "/dir", links=40), Case("k1", "/dir", links=41), Case("k1/sub", "/dir/sub", links=41),
    Case("m1", "/dir", links=256),
    # missing parts are kept as given (or refused, by the callers that need them)
    Case("nothing/here", "/nothing/here", "missing"), Case("dangling", "/nowhere/x", "missing"),
    Case("abs/nothing", "/dir/nothing", "missing"), Case("file/below", "/file/below", "missing"),
    # the last part with and without follow
    Case("dir/lnk", "/dir/sub"), Case("dir/lnk", "/dir/lnk", "link", follow=False),
    Case("abs/lnk", "/dir/lnk", "link", follow=False), Case("hop1", "/hop1", "link", follow=False),
    Case("self", "/self", "link", follow=False), Case("loop1/x", LOOP, follow=False),
    Case("dir/sub/rootlink/abs", "/abs", "link", follow=False), Case("dir/file", "/dir/file", "file", follow=False),
    Case("abs/", "/abs", "link", follow=False),  # a trailing slash is dropped first (the kernel would follow)
    Case("up/sub", "/dir/sub", follow=False), Case("dir/nothing", "/dir/nothing", "missing", follow=False),
]


def _make(root: Path, entries: list[tuple[str, str]]) -> None:
    for name, what in entries:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if what == "dir":
            path.mkdir(exist_ok=True)
        elif what == "file":
            path.write_text(name)
        else:
            os.symlink(what[2:], path)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tree")
    _make(root, TREE)
    return root


@pytest.fixture(scope="module")
def layers(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The same tree as a stack of two layer directories (top first), the links spread over both.

    The lower layer also holds a different hop2, which the upper one's hides.
    """
    upper, lower = tmp_path_factory.mktemp("upper"), tmp_path_factory.mktemp("lower")
    _make(upper, [entry for n, entry in enumerate(TREE) if n % 2 == 0 or entry[0] == "hop2"])
    _make(lower, [entry for n, entry in enumerate(TREE) if n % 2 == 1 and entry[0] != "hop2"])
    _make(lower, [("hop2", "->/nowhere")])
    return [upper, lower]


# -- the callers, each answering "/..." or raising its own error

def _core(tree: Path, case: Case) -> str:
    parts = pathresolve.resolve(pathresolve.disk_readlink(str(tree)), case.path, follow_last=case.follow,
                                max_links=pathresolve.KERNEL_MAX_LINKS)
    return "/" + "/".join(parts)


def _secure_join(tree: Path, case: Case) -> str:
    joined = secure_join(str(tree), case.path)
    assert joined == str(tree) or joined.startswith(str(tree) + "/"), joined
    return "/" + joined[len(str(tree)) + 1:]


def _context(tree: Path, case: Case) -> str:
    rel = BuildContext(tree).resolve(case.path)
    return "/" if rel == "." else "/" + rel


def _rootview(layers: list[Path], case: Case) -> str:
    return RootView(layers).resolve(case.path, follow_last=case.follow)


def _unpacker(tree: Path, case: Case) -> str:
    resolver = Resolver(str(tree))
    parts = clean(case.path)
    found = resolver.path(parts, create=False) if not case.follow else resolver.directory(parts, create=False)
    assert found == str(tree) or found.startswith(str(tree) + "/"), found
    return "/" + found[len(str(tree)) + 1:]


@dataclass(frozen=True)
class Caller:
    name: str
    run: Callable[[Any, Case], str]
    max_links: int
    follows_only: bool = False   # no mode that leaves the last part unfollowed
    lexical: bool = False        # ".." cleaned before resolving
    refuses_escape: bool = False
    missing: type[Exception] | None = None  # the error for a missing part, None when kept
    layered: bool = False


CALLERS = [
    Caller("core", _core, pathresolve.KERNEL_MAX_LINKS),
    Caller("secure_join", _secure_join, 255, follows_only=True),
    Caller("build-context", _context, 255, follows_only=True, lexical=True, refuses_escape=True,
           missing=SourceNotFound),
    Caller("rootview", _rootview, 255, lexical=True, layered=True),
    Caller("unpacker", _unpacker, 40, lexical=True, refuses_escape=True, missing=LayerError),
]


def _expected(caller: Caller, case: Case) -> tuple[str, type[Exception] | None]:
    """(answer, error type) for `caller`: the case's answer adjusted by the caller's documented policy."""
    want = case.lexical if caller.lexical and case.lexical else case.want
    if want == "refused":
        if caller.refuses_escape:
            return "", UnsafeContent
        want = posixpath.normpath("/" + case.path.lstrip("/"))  # the root view stops lexical ".." at the root
    if want == LOOP or case.links > caller.max_links:
        return "", OSError if caller.name in ("core", "secure_join") else UnsafeContent
    if case.kind == "missing" and caller.missing is not None and case.follow:  # (path() never looks at the last)
        return "", caller.missing
    if caller.name == "unpacker" and case.follow and case.kind != "dir":
        return "", LayerError  # directory(): every part is a directory
    return want, None


def _params() -> list[object]:
    out = []
    for caller in CALLERS:
        for case in CASES:
            if caller.follows_only and not case.follow:
                continue
            mode = "" if case.follow else ",nofollow"
            out.append(pytest.param(caller, case, id=f"{caller.name}:{case.path or '<empty>'}{mode}"))
    return out


@pytest.mark.parametrize(("caller", "case"), _params())
def test_every_caller_gives_the_confined_answer(caller: Caller, case: Case, tree: Path,
                                                layers: list[Path]) -> None:
    want, error = _expected(caller, case)
    where = layers if caller.layered else tree
    if error is None:
        assert caller.run(where, case) == want
        return
    with pytest.raises(error) as raised:
        caller.run(where, case)
    if want == "" and (case.want == LOOP or case.links > caller.max_links):
        if isinstance(raised.value, OSError):
            assert raised.value.errno == errno.ELOOP
        assert "too many levels of symbolic links" in str(raised.value).lower()


def test_the_answer_kinds_are_what_the_cases_say(tree: Path) -> None:
    """The corpus itself: each expected answer is what the case says it is (so a wrong `want` cannot pass)."""
    for case in CASES:
        for want in (case.want, case.lexical):
            if want in (None, LOOP, "refused"):
                continue
            path = tree / want.lstrip("/")
            kind = ("link" if path.is_symlink() else "dir" if path.is_dir() else "file" if path.is_file()
                    else "missing")
            assert kind == case.kind, (case, want)


def test_the_walk_is_asked_about_resolved_parts_only() -> None:
    """The callback sees each part once, by its resolved name: never a name with a link or ".." in it."""
    links = {("a",): "/b/c", ("b", "c", "d"): "../../e"}
    asked: list[tuple[str, ...]] = []

    def readlink(parts: tuple[str, ...]) -> str | None:
        asked.append(parts)
        return links.get(parts)

    assert pathresolve.resolve(readlink, "/a/d/f") == ("e", "f")
    assert asked == [("a",), ("b",), ("b", "c"), ("b", "c", "d"), ("e",), ("e", "f")]
    asked.clear()
    assert pathresolve.resolve(readlink, "a/d", follow_last=False) == ("b", "c", "d")
    assert asked == [("a",), ("b",), ("b", "c")]
    asked.clear()
    assert pathresolve.resolve(readlink, "d", start=("b", "c")) == ("e",)
    assert asked == [("b", "c", "d"), ("e",)]


def test_the_loop_error_is_eloop_and_names_the_path() -> None:
    with pytest.raises(pathresolve.SymlinkLoop) as raised:
        pathresolve.resolve(lambda parts: "x", "x/y", max_links=3)
    assert raised.value.errno == errno.ELOOP and raised.value.filename == "x/y"
    assert pathresolve.resolve(lambda parts: "/" if parts == ("x",) else None, "x/x/x/y", max_links=3) == ("y",)
    with pytest.raises(pathresolve.SymlinkLoop):
        pathresolve.resolve(lambda parts: "/" if parts == ("x",) else None, "x/x/x/x/y", max_links=3)
