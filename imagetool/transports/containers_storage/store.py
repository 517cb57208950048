"""A containers/storage store on disk (overlay driver): where it is, its locks, its JSON records.

Layout (graphroot): overlay/<layer id>/{diff,link,lower,work,merged}, overlay/l/<short id> -> ../<id>/diff,
overlay-layers/layers.json + <id>.tar-split.gz + layers.lock, overlay-images/images.json + <image id>/<big
data> + images.lock, storage.lock. The locks are fcntl (POSIX record) locks on whole files, as
containers/storage takes them; a writer also puts a fresh 64-byte token into each lock file it wrote under,
which is how a long-running podman learns that the records changed. JSON files are replaced atomically.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import tempfile
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from imagetool.errors import LayoutError, StoreLocked, Unsupported

DRIVER = "overlay"
SYSTEM_CONF = "/etc/containers/storage.conf"


@dataclass(frozen=True)
class StoreSpec:
    """`[DRIVER@GRAPHROOT+RUNROOT:OPTIONS]` of a reference; empty parts are the defaults'."""

    driver: str = ""
    graphroot: str = ""
    runroot: str = ""
    options: tuple[str, ...] = ()

    def __str__(self) -> str:
        text = f"{self.driver}@" if self.driver else ""
        text += self.graphroot
        if self.runroot:
            text += "+" + self.runroot
        if self.options:
            text += ":" + ",".join(self.options)
        return f"[{text}]"


def _conf_path() -> str | None:
    env = os.environ.get("CONTAINERS_STORAGE_CONF")
    if env:
        return env
    if os.geteuid() != 0:
        config_home = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
        user = os.path.join(config_home, "containers", "storage.conf")
        if os.path.exists(user):
            return user
    return SYSTEM_CONF if os.path.exists(SYSTEM_CONF) else None


def _conf() -> dict[str, Any]:
    path = _conf_path()
    if path is None:
        return {}
    import tomllib

    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise LayoutError(f"reading {path}: {err}") from err
    storage = doc.get("storage")
    return storage if isinstance(storage, dict) else {}


def defaults() -> StoreSpec:
    """containers/storage's default store: storage.conf for root, the XDG locations for other users."""
    conf = _conf()
    driver = str(conf.get("driver") or DRIVER)
    if os.geteuid() == 0:
        return StoreSpec(driver, str(conf.get("graphroot") or "/var/lib/containers/storage"),
                         str(conf.get("runroot") or "/run/containers/storage"))
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    graphroot = str(conf.get("rootless_storage_path") or os.path.join(data_home, "containers", "storage"))
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    runroot = (os.path.join(runtime_dir, "containers") if runtime_dir
               else f"/tmp/containers-user-{os.geteuid()}/containers")
    return StoreSpec(driver, graphroot, runroot)


def resolve(spec: StoreSpec) -> StoreSpec:
    """The spec with the defaults filled in; only the overlay driver is spoken here."""
    base = defaults()
    full = StoreSpec(spec.driver or base.driver, spec.graphroot or base.graphroot,
                     spec.runroot or base.runroot, spec.options)
    if full.driver != DRIVER:
        raise Unsupported(f"containers-storage: the {full.driver!r} storage driver is not supported "
                          f"by imagetool (only {DRIVER!r})")
    return full


def big_data_name(key: str) -> str:
    """The file name containers/storage gives a big-data item: the key itself when it is made of
    [0-9a-z.] only, else "=" + base64 of it."""
    if key and all(c == "." or c.isdigit() or ("a" <= c <= "z") for c in key):
        return key
    return "=" + base64.b64encode(key.encode()).decode()


def _token(fd: int) -> None:
    """A new last-writer token in a lock file (containers/storage compares it to notice changes)."""
    os.pwrite(fd, os.urandom(32).hex().encode(), 0)


class Store:
    """One graphroot/runroot pair; every change happens under `write()`, every read under `read()`."""

    def __init__(self, spec: StoreSpec) -> None:
        self.spec = resolve(spec)
        self.root = Path(self.spec.graphroot)
        self.runroot = Path(self.spec.runroot)
        self.overlay = self.root / "overlay"
        self.layers_dir = self.root / "overlay-layers"
        self.images_dir = self.root / "overlay-images"
        self.containers_dir = self.root / "overlay-containers"

    def exists(self) -> bool:
        return self.layers_dir.is_dir() or self.images_dir.is_dir()

    def ensure(self) -> None:
        """The directories containers/storage makes when it first opens a store."""
        if self.root.exists() and not self.overlay.is_dir():
            others = [d for d in ("vfs", "btrfs", "zfs", "devicemapper", "aufs") if (self.root / d).is_dir()]
            if others:
                raise Unsupported(f"containers-storage: {self.root} uses the {others[0]!r} driver; "
                                  "imagetool writes only overlay stores")
        for d in (self.root, self.overlay, self.overlay / "l", self.layers_dir, self.images_dir,
                  self.containers_dir, self.runroot):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
        staging = self.staging_root()
        staging.mkdir(mode=0o700, exist_ok=True)

    def staging_root(self) -> Path:
        """Where layers are unpacked before they are named. Inside overlay/, which containers/storage
        bind-mounts onto itself (a rename into it from elsewhere in the graphroot crosses mounts); it has
        no diff/ of its own, so containers/storage never takes it for a layer."""
        return self.overlay / ".imagetool-staging"

    # -- locks

    @contextmanager
    def _locked(self, path: Path, write: bool) -> Iterator[int]:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as err:
            if write:
                raise LayoutError(f"lock {path}: {err.strerror}") from err
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX if write else fcntl.LOCK_SH)
            except OSError as err:
                raise StoreLocked(f"lock {path}: {err.strerror}") from err
            yield fd
            if write:
                _token(fd)
        finally:
            os.close(fd)  # releases the record lock

    @contextmanager
    def write(self) -> Iterator[None]:
        """storage.lock, layers.lock, images.lock held for writing, in containers/storage's order."""
        self.ensure()
        with ExitStack() as stack:
            for path in (self.root / "storage.lock", self.layers_dir / "layers.lock",
                         self.images_dir / "images.lock"):
                stack.enter_context(self._locked(path, True))
            yield

    @contextmanager
    def read(self) -> Iterator[None]:
        if not self.exists():
            yield
            return
        with ExitStack() as stack:
            for path in (self.layers_dir / "layers.lock", self.images_dir / "images.lock"):
                if path.parent.is_dir():
                    stack.enter_context(self._locked(path, False))
            yield

    # -- records

    def _load(self, path: Path) -> list[dict[str, Any]]:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return []
        if not data.strip():
            return []
        try:
            doc = json.loads(data)
        except ValueError as err:
            raise LayoutError(f"{path}: {err}") from err
        if not isinstance(doc, list) or not all(isinstance(e, dict) and isinstance(e.get("id"), str) for e in doc):
            raise LayoutError(f"{path}: not a list of records")
        return doc

    def _save(self, path: Path, records: list[dict[str, Any]]) -> None:
        atomic_write(path, json.dumps(records, separators=(",", ":")).encode(), 0o600)

    def layers(self) -> list[dict[str, Any]]:
        return self._load(self.layers_dir / "layers.json")

    def save_layers(self, layers: list[dict[str, Any]]) -> None:
        self._save(self.layers_dir / "layers.json", layers)

    def images(self) -> list[dict[str, Any]]:
        return self._load(self.images_dir / "images.json")

    def save_images(self, images: list[dict[str, Any]]) -> None:
        self._save(self.images_dir / "images.json", images)

    def containers(self) -> list[dict[str, Any]]:
        return self._load(self.containers_dir / "containers.json")

    # -- big data

    def big_data_path(self, image_id: str, key: str) -> Path:
        return self.images_dir / image_id / big_data_name(key)

    def read_big_data(self, image_id: str, key: str) -> bytes | None:
        try:
            return self.big_data_path(image_id, key).read_bytes()
        except FileNotFoundError:
            return None

    # -- layer paths

    def diff_dir(self, layer_id: str) -> Path:
        return self.overlay / layer_id / "diff"

    def tarsplit_path(self, layer_id: str) -> Path:
        return self.layers_dir / f"{layer_id}.tar-split.gz"


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """temp file in the same directory, fsync, rename: a reader sees the old file or the new one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
