"""Containers kept in the store after `run` without --rm: list them, remove them.

Each lives in <store>/containers/<name>: config.json (image, command, creation time), the
upperdir, and state.json once the command has ended. A running container holds an flock
on its `lock` file, so `ps` can tell it is running and `rm` leaves it alone.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from imagetool import userns
from imagetool.errors import ContainerError

LOCK = "lock"
CONFIG = "config.json"
STATE = "state.json"


@dataclass(frozen=True)
class ContainerInfo:
    name: str
    image: str
    command: list[str]
    created: float
    running: bool
    exit_code: int | None
    #: the manifest digest of the image it was made from (`image` is how the user named it)
    image_digest: str = ""


class Running:
    """Marks a container as running for as long as the `with` block lasts."""

    def __init__(self, cdir: Path) -> None:
        self._fd = os.open(cdir / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __enter__(self) -> Running:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self._fd)


def record_exit(cdir: Path, code: int) -> None:
    tmp = cdir / f".{STATE}.tmp"
    tmp.write_text(json.dumps({"exit_code": code, "finished": time.time()}))
    os.replace(tmp, cdir / STATE)


def _running(cdir: Path) -> bool:
    try:
        fd = os.open(cdir / LOCK, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _read(path: Path) -> dict:  # type: ignore[type-arg]
    try:
        doc = json.loads(path.read_text())
        return doc if isinstance(doc, dict) else {}
    except (OSError, ValueError):
        return {}


def list_containers(root: Path) -> list[ContainerInfo]:
    """Every container under `root` (<store>/containers), oldest first."""
    out = []
    for cdir in sorted(root.iterdir()) if root.is_dir() else []:
        if not cdir.is_dir():
            continue
        config, state = _read(cdir / CONFIG), _read(cdir / STATE)
        process = (config.get("spec") or {}).get("process") or {}
        code = state.get("exit_code")
        out.append(ContainerInfo(cdir.name, str(config.get("image_name") or config.get("image") or ""),
                                 list(process.get("args") or []), float(config.get("created") or 0),
                                 _running(cdir), code if isinstance(code, int) else None,
                                 str(config.get("image") or "")))
    return sorted(out, key=lambda c: c.created)


def users_of_images(root: Path) -> dict[str, list[str]]:
    """Image digest -> the names of the containers made from it (what `rmi` must not pull away)."""
    users: dict[str, list[str]] = {}
    for cdir in sorted(root.iterdir()) if root.is_dir() else []:
        image = _read(cdir / CONFIG).get("image") if cdir.is_dir() else None
        if isinstance(image, str):
            users.setdefault(image, []).append(cdir.name)
    return users


def stopped(root: Path, name: str) -> tuple[Path, dict]:  # type: ignore[type-arg]
    """The directory and config.json of the container `name`, which must exist and not be running."""
    cdir = root / name
    if "/" in name or name in ("", ".", "..") or not cdir.is_dir():
        raise ContainerError(f"no container named {name!r}")
    if _running(cdir):
        raise ContainerError(f"container {name!r} is running")
    return cdir, _read(cdir / CONFIG)


def remove_container(root: Path, name: str) -> None:
    cdir, _ = stopped(root, name)
    # renamed first, so a half-removed directory is never mistaken for a container
    doomed = root / f".removing-{name}-{os.getpid()}"
    os.rename(cdir, doomed)
    remove_dir(doomed)


def remove_dir(cdir: Path) -> None:
    """Remove a container's directory; rootless its upperdir holds files of subordinate ids, removed
    inside the store's user namespace."""
    try:
        userns.remove_tree(cdir)
    except OSError as err:
        raise ContainerError(f"removing container {cdir.name}: {err}") from err
