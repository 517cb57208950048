"""Real unprivileged users for rootless tests: made per session, with or without subordinate id ranges.

CI runs as root; a rootless test runs imagetool as one of these users through `runuser`, with its
own home (the store under $XDG_DATA_HOME), exactly as an unprivileged CI runner would. The users,
their /etc/subuid and /etc/subgid lines and their homes are removed when the session ends.
"""

from __future__ import annotations

import os
import secrets
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[2]
#: scripts/venv makes it on Debian's python3: root's own interpreter may sit where other users cannot reach
PYTHON = REPO / ".venv-user" / "bin" / "python"
#: the range the issue's CI user has; every test user gets the same one (newuidmap checks only the caller's)
SUB_START, SUB_COUNT = 100000, 65536


@dataclass
class RootlessUser:
    name: str
    uid: int
    gid: int
    home: Path
    ranges: bool

    def env(self, **extra: str) -> dict[str, str]:
        env = {"HOME": str(self.home), "USER": self.name, "LOGNAME": self.name,
               "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
               "XDG_DATA_HOME": str(self.home / ".local" / "share"),
               "XDG_CONFIG_HOME": str(self.home / ".config"),
               "XDG_RUNTIME_DIR": str(self.home / "run"), "LANG": "C.UTF-8"}
        env.update(extra)
        return env

    @property
    def store(self) -> Path:
        """The user's default local store."""
        return self.home / ".local" / "share" / "imagetool" / "store"

    def argv(self, argv: list[str], env: dict[str, str] | None = None) -> list[str]:
        """What runs `argv` as this user (no root left: runuser drops every id and capability), with only the
        user's environment and `env`."""
        return ["runuser", "-u", self.name, "--", "env", "-i",
                *[f"{k}={v}" for k, v in {**self.env(), **(env or {})}.items()], *argv]

    def run(self, argv: list[str], *, check: bool = True, timeout: float = 300, env: dict[str, str] | None = None,
            cwd: Path | None = None, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """`argv` as this user."""
        proc = subprocess.run(self.argv(argv, env), capture_output=True, text=True, timeout=timeout,
                              cwd=cwd or self.home, input=input)
        if check and proc.returncode != 0:
            raise AssertionError(f"as {self.name}: {' '.join(argv)} exited {proc.returncode}:\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc

    def imagetool(self, *args: str, check: bool = True, timeout: float = 300, env: dict[str, str] | None = None,
                  cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return self.run([str(PYTHON), "-m", "imagetool", *args], check=check, timeout=timeout, env=env, cwd=cwd)

    def mkdtemp(self, prefix: str = "t-") -> Path:
        """A fresh directory the user owns, inside its home, named with letters and digits only: peers parse
        these paths inside image references (`FROM oci:PATH:TAG` in buildah bud), and a name ending in
        mkdtemp's `_` was once refused there."""
        while True:
            path = self.home / "work" / f"{prefix}{secrets.token_hex(6)}"
            try:
                path.mkdir(mode=0o700)
            except FileExistsError:
                continue
            os.chown(path, self.uid, self.gid)
            return path

    def give(self, path: Path) -> None:
        """Hand `path` (a tree root made here) to the user."""
        for dirpath, dirnames, filenames in os.walk(path):
            os.chown(dirpath, self.uid, self.gid)
            for name in filenames:
                os.chown(os.path.join(dirpath, name), self.uid, self.gid, follow_symlinks=False)
            for name in dirnames:
                if os.path.islink(os.path.join(dirpath, name)):
                    os.chown(os.path.join(dirpath, name), self.uid, self.gid, follow_symlinks=False)

    def clear_store(self) -> None:
        """Remove the user's store as root (a test may leave files owned by subordinate ids)."""
        shutil.rmtree(self.store, ignore_errors=True)


def _check_reachable() -> None:
    """The user must be able to read the checkout and its virtualenv."""
    if not PYTHON.exists():
        raise RuntimeError(f"{PYTHON} is missing: scripts/venv (as root) makes it")
    for parent in [REPO, *REPO.parents]:
        if not os.stat(parent).st_mode & 0o001:
            raise RuntimeError(f"{parent} is not searchable by other users: rootless tests cannot run imagetool")


def _create(prefix: str, ranges: bool) -> RootlessUser:
    name = f"{prefix}{os.getpid() % 100000}"
    subprocess.run(["userdel", "-r", name], capture_output=True)
    base = Path(tempfile.mkdtemp(prefix=f"imagetool-{name}-", dir="/tmp"))
    base.chmod(0o755)
    home = base / "home"
    # no subordinate ranges of useradd's own choosing (login.defs SUB_UID_COUNT): only the ones added below
    subprocess.run(["useradd", "-M", "-d", str(home), "-s", "/bin/sh", "-U", "-K", "SUB_UID_COUNT=0",
                    "-K", "SUB_GID_COUNT=0", name], check=True, capture_output=True)
    entry = pwd.getpwnam(name)
    if ranges:
        subprocess.run(["usermod", "--add-subuids", f"{SUB_START}-{SUB_START + SUB_COUNT - 1}",
                        "--add-subgids", f"{SUB_START}-{SUB_START + SUB_COUNT - 1}", name], check=True,
                       capture_output=True)
    for sub in ("", "work", "run", ".local/share", ".config"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    (home / "run").chmod(0o700)
    user = RootlessUser(name, entry.pw_uid, entry.pw_gid, home, ranges)
    user.give(home)
    return user


def _remove(user: RootlessUser) -> None:
    subprocess.run(["pkill", "-KILL", "-u", user.name], capture_output=True)
    subprocess.run(["userdel", user.name], capture_output=True)
    for path in ("/etc/subuid", "/etc/subgid"):  # userdel leaves them on some shadow builds
        try:
            lines = Path(path).read_text().splitlines(keepends=True)
        except FileNotFoundError:
            continue
        kept = [line for line in lines if not line.startswith(f"{user.name}:")]
        if kept != lines:
            Path(path).write_text("".join(kept))
    shutil.rmtree(user.home.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def rootless_user() -> Iterator[RootlessUser]:
    """An unprivileged user with 100000:65536 in /etc/subuid and /etc/subgid (a typical CI runner)."""
    _check_reachable()
    user = _create("itr", ranges=True)
    try:
        yield user
    finally:
        _remove(user)


@pytest.fixture(scope="session")
def rootless_user_no_ranges() -> Iterator[RootlessUser]:
    """An unprivileged user with no subordinate ids: only its own uid and gid can be mapped."""
    _check_reachable()
    user = _create("itn", ranges=False)
    try:
        yield user
    finally:
        _remove(user)
