"""The build context: where COPY/ADD sources come from, what .dockerignore hides, and their content hash.

Source paths are relative to the context root (a leading / too). A path that climbs out
of the root is refused; symlinks met while resolving a source are followed inside the
root (an absolute target is taken relative to the root, like a chroot), so no source
can name a file outside the context. Inside a copied directory, symlinks stay symlinks.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import posixpath
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from imagetool import pathresolve
from imagetool.build import dockerignore
from imagetool.digest import CHUNK, Digest
from imagetool.errors import BuildError, UnsafeContent

_MAX_LINKS = pathresolve.SECUREJOIN_MAX_LINKS
_GLOB = set("*?[")


class SourceNotFound(BuildError):
    """A COPY/ADD source that is not in the context (or that .dockerignore excludes)."""


@dataclass(frozen=True)
class Source:
    """One resolved COPY/ADD source: `rel` as seen from the root (symlinks resolved), `path` on disk."""

    rel: str
    path: Path
    is_dir: bool
    #: the path as the COPY names it (a glob's match), before symlinks are resolved: a copied file keeps this name
    name: str = ""


@dataclass(frozen=True)
class Entry:
    """A file under a source: `rel` relative to the source (\"\" for the source itself)."""

    rel: str
    path: Path
    st: os.stat_result


def _escapes(path: str) -> bool:
    return path == ".." or path.startswith("../")


def clean(path: str) -> str:
    """A source path relative to the root; climbing out of it is an error."""
    rel = posixpath.normpath(path.lstrip("/")) if path.strip("/") else "."
    if _escapes(rel):
        raise UnsafeContent(f"forbidden path outside the build context: {path}")
    return rel


def is_glob(path: str) -> bool:
    return any(c in _GLOB for c in path)


class BuildContext:
    def __init__(self, root: str | Path, dockerfile: str | Path | None = None,
                 ignore: dockerignore.Matcher | None = None) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise BuildError(f"build context {root} is not a directory")
        self.dockerfile = Path(dockerfile) if dockerfile else None
        self.ignore = ignore if ignore is not None else dockerignore.load(self.root, self.dockerfile)
        self._hashes: dict[tuple[int, int, int, int], str] = {}
        self._walks: dict[Source, list[Entry]] = {}

    # -- resolving sources

    def resolve(self, rel: str) -> str:
        """Follow symlinks in `rel` without leaving the root; returns the resolved root-relative path."""
        root = str(self.root)

        def readlink(parts: tuple[str, ...]) -> str | None:
            candidate = os.path.join(root, *parts)
            try:
                st = os.lstat(candidate)
            except (FileNotFoundError, NotADirectoryError) as err:
                raise SourceNotFound(f"{rel}: no such file or directory in the build context") from err
            return os.readlink(candidate) if stat.S_ISLNK(st.st_mode) else None

        try:
            done = pathresolve.resolve(readlink, clean(rel), max_links=_MAX_LINKS)
        except pathresolve.SymlinkLoop as err:
            raise UnsafeContent(f"{rel}: too many levels of symbolic links") from err
        return "/".join(done) or "."

    def _glob(self, pattern: str) -> list[str]:
        parts = [p for p in clean(pattern).split("/") if p != "."]
        found = [""]
        for part in parts:
            nxt = []
            for base in found:
                d = self.root / base if base else self.root
                if not is_glob(part):
                    if os.path.lexists(d / part):
                        nxt.append(posixpath.join(base, part) if base else part)
                    continue
                try:
                    names = sorted(os.listdir(d))
                except (NotADirectoryError, FileNotFoundError):
                    continue
                pat = part.replace("[^", "[!")
                nxt += [posixpath.join(base, n) if base else n for n in names if fnmatch.fnmatchcase(n, pat)]
            found = nxt
        return found

    def sources(self, patterns: list[str] | tuple[str, ...]) -> list[Source]:
        """COPY/ADD source arguments -> existing, not-excluded sources (globs expanded, in order).

        A glob that matches nothing is passed over as long as another source matches (Docker's
        and buildah's rule); a plain path that is missing is always an error."""
        out: list[Source] = []
        for pattern in patterns:
            names = self._glob(pattern) if is_glob(pattern) else [clean(pattern)]
            matched = []
            for name in names:
                if name != "." and self.ignore.excluded(name) and not self._reincludes(name):
                    continue
                resolved = self.resolve(name)
                if resolved != "." and self.ignore.excluded(resolved) and not self._reincludes(resolved):
                    continue
                path = self.root / resolved if resolved != "." else self.root
                matched.append(Source(resolved, path, path.is_dir(), name))
            if not matched and not is_glob(pattern):
                raise SourceNotFound(f"{pattern}: not found in the build context or excluded by "
                                     f".dockerignore")
            out.extend(matched)
        if patterns and not out:
            raise SourceNotFound(f"{' '.join(patterns)}: no source file matches in the build context "
                                 f"(or .dockerignore excludes them)")
        return out

    def _reincludes(self, name: str) -> bool:
        """An excluded directory is still in the context when a `!` pattern keeps something under it
        (BuildKit sends the parents of what it sends: `**` then `!dir/file` leaves `dir` with `file`)."""
        path = self.root / name
        if path.is_symlink() or not path.is_dir() or not self.ignore.may_include_under(name):
            return False
        return next(iter(self._walk_dir(path, name, "")), None) is not None

    # -- walking and hashing

    def walk(self, source: Source) -> list[Entry]:
        """The source and, for a directory, everything under it not excluded; sorted, symlinks not followed.

        Remembered per source: the cache key (content hash) and the copy walk the same tree once.
        """
        found = self._walks.get(source)
        if found is None:
            found = [Entry("", source.path, os.stat(source.path))]
            if source.is_dir:
                found += self._walk_dir(source.path, source.rel, "")
            self._walks[source] = found
        return found

    def _walk_dir(self, directory: Path, ctx_rel: str, rel: str) -> Iterator[Entry]:
        try:
            names = sorted(os.listdir(directory))
        except OSError as err:
            raise BuildError(f"reading {directory}: {err.strerror}") from err
        for name in names:
            path = directory / name
            child_ctx = name if ctx_rel in (".", "") else f"{ctx_rel}/{name}"
            child_rel = f"{rel}/{name}" if rel else name
            st = os.lstat(path)
            excluded = self.ignore.excluded(child_ctx)
            if not excluded:
                yield Entry(child_rel, path, st)
            if stat.S_ISDIR(st.st_mode) and (not excluded or self.ignore.may_include_under(child_ctx)):
                yield from self._walk_dir(path, child_ctx, child_rel)

    def file_hash(self, path: Path, st: os.stat_result) -> str:
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        cached = self._hashes.get(key)
        if cached is None:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                while chunk := f.read(CHUNK):
                    h.update(chunk)
            cached = self._hashes[key] = h.hexdigest()
        return cached

    def content_hash(self, sources: list[Source]) -> Digest:
        """What COPY/ADD would copy: names, types, modes, sizes, contents and link targets (not times)."""
        h = hashlib.sha256()
        for source in sources:
            for e in self.walk(source):
                mode = e.st.st_mode
                if stat.S_ISREG(mode):
                    what = self.file_hash(e.path, e.st)
                elif stat.S_ISLNK(mode):
                    what = "->" + os.readlink(e.path)
                else:
                    what = ""
                h.update(f"{source.rel}\0{e.rel}\0{stat.S_IFMT(mode):o}\0{stat.S_IMODE(mode):o}\0"
                         f"{e.st.st_size if stat.S_ISREG(mode) else 0}\0{what}\n".encode("utf-8", "surrogateescape"))
        return Digest("sha256", h.hexdigest())


IMAGE_SCHEMES = ("docker-image://", "container-image://")


@dataclass
class NamedContexts:
    """--build-context NAME=DIR or NAME=docker-image://REF: what FROM NAME, COPY --from=NAME and
    RUN --mount from=NAME then mean (a stage of that name still comes first)."""

    dirs: dict[str, BuildContext] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, values: Mapping[str, str]) -> NamedContexts:
        named = cls()
        for name, value in values.items():
            if not name or not value:
                raise BuildError(f"--build-context {name}={value}: expected NAME=DIR or NAME=docker-image://REF")
            scheme = next((s for s in IMAGE_SCHEMES if value.startswith(s)), None)
            if scheme is not None:
                named.images[name] = value[len(scheme):]
            elif "://" in value:
                raise BuildError(f"--build-context {name}={value}: only directories and docker-image:// "
                                 "or container-image:// references are supported")
            else:
                named.dirs[name] = BuildContext(value)
        return named

    def kinds(self) -> dict[str, str | None]:
        """name -> the image it stands for, or None for a directory (what the stage planner needs)."""
        return {**{name: None for name in self.dirs}, **self.images}
