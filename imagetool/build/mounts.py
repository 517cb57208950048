"""RUN --mount specs -> what the runtime mounts: host directories and files, or layer stacks.

A bind from the context is a path inside it (never outside), and rw writes go to a
throwaway layer or copy, never to the user's files; a bind from a stage or an image is
that stage's layer directories (mounted read-only, or with a throwaway upper for rw);
a cache mount is a directory kept in the local store under its id; a secret
is a file given with --secret id=ID,src=PATH; tmpfs is just that.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

from imagetool import userns
from imagetool.build.context import BuildContext
from imagetool.build.stagewalker import MountSpec
from imagetool.errors import BuildError

CACHE_MOUNTS = "build-mounts"


@dataclass(frozen=True)
class HostMount:
    """One mount for a RUN: `path` (a host file or directory) or `layers` (top first) plus `subpath`."""

    type: str                       # "bind" (also cache and secret resolve to binds), or "tmpfs"
    target: str
    readonly: bool = False
    path: Path | None = None
    layers: tuple[Path, ...] = ()
    subpath: str = "/"
    #: tmpfs size in bytes, and the sharing mode a cache mount asked for ("locked" needs an flock)
    size: int | None = None
    sharing: str = "shared"
    options: dict[str, int] = field(default_factory=dict)
    #: a secret's content when it came from the environment rather than a file (`path` is then None)
    data: bytes | None = None
    #: U: mount a private copy whose files are owned by these ids (the RUN step's user)
    chown: tuple[int, int] | None = None


def parse_secrets(values: list[str] | tuple[str, ...]) -> dict[str, Path | bytes]:
    """--secret id=ID,src=PATH, or an environment variable: id=ID,env=VAR or id=ID,src=VAR,type=env
    (buildah's and docker's spellings); an env secret is kept in memory, never written to the context."""
    out: dict[str, Path | bytes] = {}
    for value in values:
        fields = dict(item.partition("=")[::2] for item in value.split(","))
        kind = fields.get("type") or ("env" if "env" in fields else "file")
        sid, src = fields.get("id"), fields.get("env") or fields.get("src") or fields.get("source")
        if not sid or not src:
            raise BuildError(f"--secret {value!r}: expected id=ID,src=PATH or id=ID,env=VARIABLE")
        if kind == "env":
            if src not in os.environ:
                raise BuildError(f"--secret {sid}: the variable {src} is not set")
            out[sid] = os.environ[src].encode()
        elif kind == "file":
            if not os.path.isfile(src):
                raise BuildError(f"--secret {sid}: {src} is not a file")
            out[sid] = Path(src)
        else:
            raise BuildError(f"--secret {value!r}: type must be file or env")
    return out


def selinux_enabled() -> bool:
    return os.path.exists("/sys/fs/selinux/enforce")


def resolve_mounts(specs: tuple[MountSpec, ...], *, context: BuildContext, store_root: Path,
                   stage_layers: dict[int, list[Path]], image_layers: dict[str, list[Path]],
                   secrets: dict[str, Path | bytes], named: dict[str, BuildContext] | None = None,
                   user_ids: tuple[int, int] = (0, 0), root_layers: tuple[Path, ...] = ()) -> list[HostMount]:
    """Host-side sources for a RUN's mounts; `*_layers` give directories bottom first; `user_ids` are
    the RUN user's, for the U flag; `root_layers` (top first) are the step's own, for tmpcopyup."""
    out: list[HostMount] = []
    for m in specs:
        if m.relabel and selinux_enabled():
            raise BuildError(f"--mount target={m.target}: SELinux relabeling (z, Z) is not supported here")
        if m.type in ("tmpfs", "secret") and (m.chown or m.overlay):
            raise BuildError(f"--mount type={m.type}: the U and O flags apply to bind and cache mounts")
        copied = _image_dir(root_layers, m.target) if m.type == "tmpfs" and m.copyup else None
        if copied is not None:
            # the image's directory under a throwaway upper: what the step writes there is dropped, as on a tmpfs
            out.append(HostMount("bind", m.target, False, layers=root_layers, subpath=copied))
        elif m.type == "tmpfs":
            out.append(HostMount("tmpfs", m.target, size=m.size))
        elif m.type == "secret":
            src = secrets.get(m.id or os.path.basename(m.target))
            if src is None:
                if m.required:
                    raise BuildError(f"secret {m.id!r} is required: give it with --secret id={m.id},src=PATH")
                continue
            out.append(HostMount("bind", m.target, True, path=src if isinstance(src, Path) else None,
                                 options={"mode": m.mode if m.mode is not None else 0o400, "uid": m.uid or 0,
                                          "gid": m.gid or 0}, data=src if isinstance(src, bytes) else None))
        elif m.type == "cache":
            seed: tuple[Path, ...] = ()
            if m.from_stage is not None or m.from_image is not None:
                layers = stage_layers[m.from_stage] if m.from_stage is not None else image_layers[m.from_image or ""]
                seed = tuple(reversed(layers))
            out.append(_cache(m, store_root, user_ids, seed))
        elif m.from_stage is not None or m.from_image is not None:
            layers = stage_layers[m.from_stage] if m.from_stage is not None else image_layers[m.from_image or ""]
            out.append(HostMount("bind", m.target, m.readonly, layers=tuple(reversed(layers)),
                                 subpath="/" + (m.source or "").strip("/"), chown=user_ids if m.chown else None))
        else:
            source = (named or {})[m.from_context] if m.from_context else context
            rel = source.resolve(m.source or ".")
            if m.chown:  # a copy owned by the user: the context's own files are never chowned
                out.append(HostMount("bind", m.target, m.readonly, layers=(source.root,),
                                     subpath="/" + (rel if rel != "." else ""), chown=user_ids))
                continue
            out.append(_context_bind(m, source.root / rel if rel != "." else source.root))
    return out


def _image_dir(layers: tuple[Path, ...], path: str) -> str | None:
    """`path` resolved in the layers (top first) when it is a directory there, else None."""
    from imagetool.build.rootview import RootView

    if not layers:
        return None
    view = RootView(list(layers))
    resolved = view.resolve(path)
    found = view.lstat(resolved)
    return resolved if found is not None and stat.S_ISDIR(found.st_mode) else None


def _context_bind(m: MountSpec, path: Path) -> HostMount:
    """A bind from the context; with rw, writes land in a throwaway copy, never in the user's files."""
    if m.readonly:
        return HostMount("bind", m.target, True, path=path)
    if path.is_dir():
        return HostMount("bind", m.target, False, layers=(path,))
    st = path.stat()
    return HostMount("bind", m.target, False, path=path,
                     options={"mode": st.st_mode & 0o7777, "uid": st.st_uid, "gid": st.st_gid})


def _cache(m: MountSpec, store_root: Path, user_ids: tuple[int, int], seed: tuple[Path, ...] = ()) -> HostMount:
    """A cache directory kept in the store under its id; with from= it starts as a copy of that stage's or
    image's `source` (BuildKit's "base of the cache mount"), and each such base has a cache of its own."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in (m.id or m.target)).strip(".") or "cache"
    subpath = "/" + (m.source or "").strip("/")
    if seed:
        safe += "-" + hashlib.sha256("\0".join([subpath, *map(str, seed)]).encode()).hexdigest()[:16]
    path = store_root / CACHE_MOUNTS / safe
    if not path.is_dir() and seed:
        path.parent.mkdir(parents=True, exist_ok=True)
        userns.call(_seed, path, seed, subpath)
    elif not path.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, m.mode if m.mode is not None else 0o755)
        if os.geteuid() == 0:
            os.chown(path, m.uid or 0, m.gid or 0)
    if m.chown:  # the cache is the store's own directory: it is chowned in place, as buildah does
        userns.call(chown_tree, path, *user_ids)
    if m.overlay:
        return HostMount("bind", m.target, False, layers=(path,), sharing=m.sharing)
    return HostMount("bind", m.target, m.readonly, path=path, sharing=m.sharing)


def _seed(path: Path, layers: tuple[Path, ...], subpath: str) -> None:
    """`subpath` of the layers (top first) copied to a new cache directory `path`, owners kept."""
    from imagetool.build.copier import Copier
    from imagetool.build.rootview import RootView
    from imagetool.build.stagewalker import CopyWork

    view = RootView(list(layers))
    top = view.lstat(view.resolve(subpath))
    if top is None or not stat.S_ISDIR(top.st_mode):
        raise BuildError(f"--mount type=cache from=: {subpath} is not a directory in its source")
    work = path.with_name(path.name + ".new")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    Copier(work, []).copy(CopyWork((subpath,), "/", from_stage=0), source=view)
    os.chmod(work, stat.S_IMODE(top.st_mode))
    os.lchown(work, top.st_uid, top.st_gid)
    os.rename(work, path)


def chown_tree(path: Path, uid: int, gid: int) -> None:
    """`chown -hR uid:gid path` (links themselves, never followed)."""
    os.lchown(path, uid, gid)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [*dirnames, *filenames]:
            os.lchown(os.path.join(dirpath, name), uid, gid)
