"""COPY/ADD into a step's upperdir, with buildah's (and Docker's) rules.

A source directory's contents (not the directory) go into the destination; a file goes
to DEST/NAME when the destination is a directory (trailing /, several sources, or a
directory already in the image) and to DEST otherwise. Copies from the context are
owned by 0:0, copies from a stage or image keep their owners, unless --chown; --chmod
sets the mode of everything copied; modes, times, symlinks and hardlinks come from the
source. Missing parents are created 0755 (owned like the copy); parents the image
already has are copied up with their metadata, as overlayfs would, so the diff of the
upperdir is the layer.
"""

from __future__ import annotations

import bz2
import email.utils
import fnmatch
import lzma
import os
import posixpath
import shutil
import stat
import tarfile
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from imagetool.build import untar
from imagetool.build.context import BuildContext, is_glob
from imagetool.build.dockerignore import Matcher
from imagetool.build.filecopy import copy_regular
from imagetool.build.rootview import RootView, resolve_owner
from imagetool.build.stagewalker import CopyWork
from imagetool import compression
from imagetool.digest import CHUNK, Digest
from imagetool.errors import BuildError, DigestMismatch, ImagetoolError, UnsafeContent


_WORKERS = 4


@dataclass(frozen=True)
class _Item:
    """One file to copy: where it is on disk and where it goes, relative to the copied source."""

    rel: str
    path: Path
    st: os.stat_result


class Copier:
    def __init__(self, upper: Path, lowers: list[Path]) -> None:
        self.upper = Path(upper)
        self.view = RootView([self.upper, *lowers])
        self._dirs: dict[str, tuple[str, bool]] = {}
        self._chown = os.geteuid() == 0

    # -- placing files in the upperdir

    def _upper(self, image_path: str) -> Path:
        return self.upper / image_path.lstrip("/")

    def ensure_dir(self, path: str, owner: tuple[int, int] | None) -> str:
        """Create `path` (resolved inside the image) in the upperdir; returns the resolved path."""
        return self._dir(_norm(path), owner)[0]

    def make_workdir(self, path: str, user: str) -> None:
        """WORKDIR's directory with its missing parents, owned by `user` (USER's syntax), through links."""
        self._dirs = {}
        self.ensure_dir(path, resolve_owner(self.view, user) if user else (0, 0))

    def _dir(self, path: str, owner: tuple[int, int] | None) -> tuple[str, bool]:
        """(resolved path, fresh): `fresh` when the directory is new in the upperdir and hides nothing below.

        Remembered for the rest of one copy, so a tree of thousands of files costs a few
        lookups per directory, not per file.
        """
        known = self._dirs.get(path)
        if known is not None:
            return known
        if path == "/":
            return self._remember(path, ("/", False))
        parent, parent_fresh = self._dir(posixpath.dirname(path), owner)
        cur = f"{parent.rstrip('/')}/{posixpath.basename(path)}"
        up = self._upper(cur)
        if parent_fresh:
            if not up.is_dir() or up.is_symlink():
                self.remove(up)
                self._mkdir(up, owner)
            return self._remember(path, (cur, True))
        found = self.view.locate(cur)
        if found is not None and stat.S_ISLNK(found[1].st_mode):
            return self._remember(path, self._dir(self.view.resolve(cur), owner))  # the image's own link
        if found is not None and not stat.S_ISDIR(found[1].st_mode):
            raise BuildError(f"cannot copy into {path}: {cur} is not a directory in the image")
        if found is None:
            self.remove(up)
            self._mkdir(up, owner)
            return self._remember(path, (cur, True))
        if found[0] != up:
            up.mkdir()
            self._meta(up, found[1], None, None)   # copy-up keeps the image's metadata
        return self._remember(path, (cur, False))

    def _remember(self, path: str, value: tuple[str, bool]) -> tuple[str, bool]:
        self._dirs[path] = value
        return value

    def _mkdir(self, up: Path, owner: tuple[int, int] | None) -> None:
        up.mkdir()
        os.chmod(up, 0o755)
        if self._chown:
            os.lchown(up, *(owner or (0, 0)))

    def remove(self, up: Path) -> None:
        """Whatever is at `up` in the upper directory, gone: a tree, a file, a link or a whiteout."""
        try:
            st = os.lstat(up)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(up)
        else:
            os.unlink(up)  # files, links, whiteouts

    def _meta(self, target: Path, st: os.stat_result, owner: tuple[int, int] | None, chmod: int | None) -> None:
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(target, chmod if chmod is not None else stat.S_IMODE(st.st_mode))
        if self._chown:
            os.lchown(target, *(owner if owner is not None else (st.st_uid, st.st_gid)))
        os.utime(target, ns=(st.st_mtime_ns, st.st_mtime_ns), follow_symlinks=False)

    def _place(self, item: _Item, dest: str, owner: tuple[int, int] | None, chmod: int | None,
               links: dict[tuple[int, int], Path]) -> None:
        parent, _, name = dest.rpartition("/")
        parent_res, fresh = self._dir(_norm(parent), owner)
        target = self._upper(parent_res) / name
        mode = item.st.st_mode
        in_upper = os.path.lexists(target)
        in_lower = not fresh and not in_upper and self.view.locate(f"{parent_res.rstrip('/')}/{name}") is not None
        if stat.S_ISDIR(mode):
            key = _norm(dest)
            if in_upper and target.is_dir() and not target.is_symlink():
                self._meta(target, item.st, owner, chmod)
                self._dirs[key] = (f"{parent_res.rstrip('/')}/{name}", fresh)
                return
            if in_upper:
                self.remove(target)
            target.mkdir()
            self._meta(target, item.st, owner, chmod)
            # a directory over one in the image merges with it; a new one hides nothing
            self._dirs[key] = (f"{parent_res.rstrip('/')}/{name}", not in_lower)
            return
        if in_upper:
            self.remove(target)
        inode = (item.st.st_dev, item.st.st_ino)
        if not stat.S_ISDIR(mode) and item.st.st_nlink > 1 and inode in links:
            os.link(links[inode], target)
            return
        if stat.S_ISREG(mode):
            own = (owner if owner is not None else (item.st.st_uid, item.st.st_gid)) if self._chown else None
            copy_regular(item.path, target, chmod if chmod is not None else stat.S_IMODE(mode), own,
                         item.st.st_mtime_ns)
            if item.st.st_nlink > 1:
                links[inode] = target
            return
        if stat.S_ISLNK(mode):
            os.symlink(os.readlink(item.path), target)
        elif stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            os.mknod(target, mode, item.st.st_rdev)
        else:
            raise BuildError(f"{item.path}: cannot copy a socket")
        self._meta(target, item.st, owner, chmod)
        if item.st.st_nlink > 1:
            links[inode] = target

    def _place_tree(self, items: list[_Item], base: str, owner: tuple[int, int] | None, chmod: int | None,
                    links: dict[tuple[int, int], Path]) -> None:
        """A directory's contents: directories in order here, plain files on a few threads.

        Creating files is bound by the file system's latency, which threads overlap; every
        directory a file needs is made (and remembered) before the file is handed out.
        """
        dirs: list[tuple[Path, os.stat_result]] = []
        with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
            pending = []
            for item in items:
                dest = f"{base}/{item.rel}"
                mode = item.st.st_mode
                if stat.S_ISREG(mode) and item.st.st_nlink == 1:
                    self._dir(_norm(dest.rpartition("/")[0]), owner)
                    pending.append(pool.submit(self._place, item, dest, owner, chmod, links))
                    continue
                self._place(item, dest, owner, chmod, links)
                if stat.S_ISDIR(mode):
                    dirs.append((self._upper(self._dirs[_norm(dest)][0]), item.st))
            for future in pending:
                future.result()
        for path, st in reversed(dirs):  # their contents changed their times: put the source's back
            os.utime(path, ns=(st.st_mtime_ns, st.st_mtime_ns), follow_symlinks=False)

    # -- sources

    def _from_context(self, context: BuildContext, patterns: tuple[str, ...]) -> list[tuple[str, list[_Item]]]:
        out = []
        for source in context.sources(list(patterns)):
            items = [_Item(e.rel, e.path, e.st) for e in context.walk(source)]
            out.append((source.name or source.rel, items))  # a link copied keeps its own name
        return out

    def _from_view(self, view: RootView, patterns: tuple[str, ...]) -> list[tuple[str, list[_Item]]]:
        out = []
        for pattern in patterns:
            names = _glob(view, pattern) if is_glob(pattern) else [pattern]
            for name in names:
                resolved = view.resolve(name)
                found = view.locate(resolved)
                if found is None:
                    raise BuildError(f"{name}: no such file or directory in the source image")
                # the content is the link's target; the name stays the one the COPY gave
                out.append((name, list(_walk_view(view, resolved, "", found))))
        if patterns and not out:
            raise BuildError(f"{' '.join(patterns)}: no such file or directory in the source image")
        return out

    def copy(self, work: CopyWork, context: BuildContext | None = None, source: RootView | None = None) -> None:
        """Apply one COPY/ADD to the upperdir."""
        self._dirs = {}
        from_image = work.from_stage is not None or work.from_image is not None
        # buildah keeps an image's owners on COPY --from; context files become 0:0
        owner = resolve_owner(self.view, work.chown) if work.chown else None if from_image else (0, 0)
        if from_image:
            if source is None:
                raise BuildError("COPY --from needs the source stage's filesystem")
            groups = self._from_view(source, work.sources)
        elif work.sources:
            if context is None:
                raise BuildError("COPY needs a build context")
            groups = self._from_context(context, work.sources)
        else:
            groups = []
        if work.excludes:
            groups = _exclude(groups, work.excludes)
        single_dir = len(groups) == 1 and not work.files and stat.S_ISDIR(groups[0][1][0].st.st_mode)
        into_dir = work.dest_is_dir or single_dir or self.view.is_dir(work.dest)
        dest = work.dest.rstrip("/") or "/"
        if into_dir:
            dest = self.ensure_dir(dest, owner)
        links: dict[tuple[int, int], Path] = {}
        for name, items in groups:
            top = items[0]
            archive = _archive(top.path) if work.add and stat.S_ISREG(top.st.st_mode) else None
            if archive is not None:
                # ADD of a local archive: unpacked into the destination (always a directory), owners kept
                base = self.ensure_dir(work.dest.rstrip("/") or "/", owner)
                with archive, tarfile.open(fileobj=archive, mode="r|") as tar:  # type: ignore[call-overload]
                    untar.unpack(self, tar, base)
            elif stat.S_ISDIR(top.st.st_mode):
                base = self.ensure_dir(dest, owner)
                self._place_tree(items[1:], base.rstrip("/"), owner, work.chmod, links)
            else:
                target = f"{dest.rstrip('/')}/{name.rsplit('/', 1)[-1]}" if into_dir else dest
                self._place(top, target, owner, work.chmod, links)
        for url in work.urls:
            name = posixpath.basename(urllib.parse.unquote(urllib.parse.urlsplit(url).path))
            if into_dir and not name:
                raise BuildError(f"ADD {url}: cannot tell a file name from the URL; give a destination file")
            self._fetch(url, f"{dest.rstrip('/')}/{name}" if into_dir else dest, owner or (0, 0),
                        work.chmod if work.chmod is not None else 0o600, work.checksum)
        for fname, content in work.files:
            target = f"{dest.rstrip('/')}/{fname}" if into_dir else dest
            self._write(target, content.encode(), owner or (0, 0),
                        work.chmod if work.chmod is not None else 0o644)

    def _fetch(self, url: str, dest: str, owner: tuple[int, int], mode: int, checksum: str | None) -> None:
        """ADD URL: streamed to the file, checked against --checksum, dated by Last-Modified."""
        import requests

        parent, _, name = dest.rpartition("/")
        target = self._upper(self.ensure_dir(parent or "/", owner)) / name
        self.remove(target)
        want = Digest.parse(checksum) if checksum else None
        h = want.hasher() if want else None
        try:
            with requests.get(url, stream=True, timeout=(10, 300)) as resp:
                resp.raise_for_status()
                with open(target, "wb") as f:
                    for chunk in resp.iter_content(CHUNK):
                        f.write(chunk)
                        if h is not None:
                            h.update(chunk)
                modified = resp.headers.get("Last-Modified")
        except requests.RequestException as err:
            raise BuildError(f"ADD {url}: {err}") from err
        if want is not None and h is not None and h.hexdigest() != want.hex:
            target.unlink()
            raise DigestMismatch(want, f"{want.algorithm}:{h.hexdigest()}")
        os.chmod(target, mode)
        if self._chown:
            os.lchown(target, *owner)
        if modified:
            try:
                when = email.utils.parsedate_to_datetime(modified).timestamp()
                os.utime(target, (when, when))
            except (TypeError, ValueError):
                pass

    def _write(self, dest: str, data: bytes, owner: tuple[int, int], mode: int) -> None:
        parent, _, name = dest.rpartition("/")
        target = self._upper(self.ensure_dir(parent or "/", owner)) / name
        self.remove(target)
        target.write_bytes(data)
        os.chmod(target, mode)
        if self._chown:
            os.lchown(target, *owner)


def _exclude(groups: list[tuple[str, list[_Item]]], patterns: tuple[str, ...]) -> list[tuple[str, list[_Item]]]:
    """COPY --exclude: a source whose name matches is dropped, and so is anything under a copied
    directory whose path below that directory matches (BuildKit's rule, .dockerignore's syntax)."""
    matcher = Matcher.from_text("\n".join(patterns))
    out = []
    for name, items in groups:
        if stat.S_ISDIR(items[0].st.st_mode):
            out.append((name, [items[0], *(i for i in items[1:] if not matcher.excluded(i.rel))]))
        elif not matcher.excluded(name.lstrip("/")) and not matcher.excluded(posixpath.basename(name)):
            out.append((name, items))
    return out


def _norm(path: str) -> str:
    """An absolute, normalised image path (never the `//` that posixpath keeps)."""
    return posixpath.normpath("/" + path.lstrip("/"))


_BZIP2, _XZ = b"BZh", b"\xfd7zXZ\x00"


def _archive(path: Path) -> BinaryIO | None:
    """A reader of the tar inside `path` (plain, gzip, zstd, bzip2 or xz), or None if it holds no tar."""
    raw = open(path, "rb")  # noqa: SIM115 - handed to the caller, which closes it
    try:
        head = raw.read(6)
        raw.seek(0)
        algorithm = compression.detect(head)
        stream: BinaryIO
        if algorithm:
            stream = compression.decompressor(raw, algorithm)
        elif head.startswith(_BZIP2):
            stream = bz2.BZ2File(raw)  # type: ignore[assignment]
        elif head.startswith(_XZ):
            stream = lzma.LZMAFile(raw)  # type: ignore[assignment]
        else:
            stream = raw
        block = stream.read(512)
        if len(block) < 512 or block[257:262] != b"ustar":
            raw.close()
            return None
        return compression.PeekReader(block, stream)  # type: ignore[return-value]
    except (OSError, EOFError, ImagetoolError, lzma.LZMAError):
        raw.close()
        return None


def _glob(view: RootView, pattern: str) -> list[str]:
    found = ["/"]
    for part in [p for p in pattern.split("/") if p and p != "."]:
        nxt = []
        for base in found:
            if not is_glob(part):
                nxt.append(f"{base.rstrip('/')}/{part}")
                continue
            resolved = view.resolve(base)
            pat = part.replace("[^", "[!")
            nxt += [f"{base.rstrip('/')}/{n}" for n in view.listdir(resolved) if fnmatch.fnmatchcase(n, pat)]
        found = [f for f in nxt if view.locate(view.resolve(f, follow_last=False)) is not None]
    return found


def _walk_view(view: RootView, path: str, rel: str, found: tuple[Path, os.stat_result]):  # type: ignore
    disk, st = found
    yield _Item(rel, disk, st)
    if not stat.S_ISDIR(st.st_mode):
        return
    for name in view.listdir(path):
        child = f"{path.rstrip('/')}/{name}"
        located = view.locate(child)
        if located is None:
            continue
        if len(child) > 4096:
            raise UnsafeContent(f"{child}: path too long")
        yield from _walk_view(view, child, f"{rel}/{name}" if rel else name, located)
