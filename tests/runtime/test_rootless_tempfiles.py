"""An unprivileged user's temporary files stay in its own directories: nothing in /tmp or /var/tmp.

Container bundles (and runc's state) go under $XDG_RUNTIME_DIR/imagetool, a build's upperdirs
under the store's tmp/ (they can be big), never a shared directory where another user could
make a name first.
"""

from __future__ import annotations

import os

import pytest

from tests.lib.probes import Prober
from tests.lib.rootless import PYTHON, RootlessUser

SHARED = ("/tmp", "/var/tmp", "/dev/shm")


def _owned_by(uid: int) -> set[str]:
    found = set()
    for base in SHARED:
        for name in os.listdir(base):
            try:
                if os.lstat(os.path.join(base, name)).st_uid == uid:
                    found.add(os.path.join(base, name))
            except FileNotFoundError:
                continue
    return found


@pytest.fixture
def user(prober: Prober, rootless_user: RootlessUser) -> RootlessUser:
    prober.user = rootless_user
    prober._ensure_image(True)
    return rootless_user


#: where the container's /etc/hosts comes from, and the overlay's upperdir, as the container sees them
SHOW = "grep ' /etc/hosts ' /proc/self/mountinfo | cut -d' ' -f4; grep -o 'upperdir=[^,]*' /proc/self/mountinfo"


def _bundle_mark(user: RootlessUser) -> str:
    """The tail of a bundle path under the user's $XDG_RUNTIME_DIR (mountinfo shows paths within their filesystem)."""
    return f"{user.home.parent.name}/home/run/imagetool/imagetool-bundle-"


@pytest.mark.parametrize("runtime", ["embedded", "runc"])
def test_run_and_build_leave_nothing_in_shared_dirs(user: RootlessUser, runtime: str) -> None:
    assert "TMPDIR" not in user.env()
    before = _owned_by(user.uid)
    runtime_dir = user.home / "run" / "imagetool"

    out = user.imagetool("run", "--rm", "--runtime", runtime, "busybox", "sh", "-c", SHOW).stdout.splitlines()
    assert _bundle_mark(user) in out[0] and out[0].endswith("/hosts"), out
    assert out[1].startswith(f"upperdir={user.store}/containers/"), out

    context = user.mkdtemp("ctx-")
    (context / "Dockerfile").write_text(f"FROM busybox\nRUN {SHOW}\nRUN echo two\n")
    user.give(context)
    build = user.imagetool("build", "--no-cache", "--runtime", runtime, str(context)).stdout.splitlines()
    hosts = next(line for line in build if line.endswith("/hosts"))
    upper = next(line for line in build if line.startswith("upperdir="))
    assert _bundle_mark(user) in hosts, build
    assert upper.startswith(f"upperdir={user.store}/tmp/imagetool-build-"), build

    assert _owned_by(user.uid) - before == set()
    assert not [p.name for p in runtime_dir.iterdir() if p.name.startswith("imagetool-bundle-")]
    assert list((user.store / "tmp").iterdir()) == []


@pytest.mark.parametrize("runtime", ["embedded", "runc"])
def test_without_a_runtime_dir_the_bundle_stays_beside_the_container(user: RootlessUser, runtime: str) -> None:
    """runc's state then lives in the bundle too."""
    before = _owned_by(user.uid)
    out = user.imagetool("run", "--rm", "--runtime", runtime, "busybox", "sh", "-c", SHOW,
                         env={"XDG_RUNTIME_DIR": ""}).stdout
    hosts = out.splitlines()[0]
    assert "/imagetool/store/containers/" in hosts and "/imagetool-bundle-" in hosts, out
    assert _owned_by(user.uid) - before == set()


def _ask(user: RootlessUser, code: str, **env: str) -> str:
    return user.run([str(PYTHON), "-c", code], env=env).stdout.strip()


def test_copy_spools_in_the_store_and_a_shared_runtime_dir_is_not_used(user: RootlessUser) -> None:
    """Big copy temp files go to the store's tmp/; a $XDG_RUNTIME_DIR others can write to is ignored."""
    temp = _ask(user, "from imagetool.transports.base import SystemContext; print(SystemContext().temp_dir)")
    assert temp == str(user.store / "tmp")
    assert _ask(user, "from imagetool.transports.base import SystemContext; print(SystemContext().temp_dir)",
                TMPDIR=str(user.home / "work")) == str(user.home / "work")  # an explicit choice still wins
    small = "from imagetool.tmpdirs import small_temp_dir; print(small_temp_dir())"
    assert _ask(user, small) == str(user.home / "run" / "imagetool")
    assert _ask(user, small, XDG_RUNTIME_DIR="/tmp") == "None"  # not the user's own, mode 1777
