"""Confinement probes: one shell script run every way a container runs, so each row asserts one outcome.

A way is (executor, root or rootless, `run` or a build RUN step). `Prober.probe(way, script)` runs the
script in the busybox test image and returns its exit status and what it printed between two marker
lines (a build prints its step lines around the RUN's output). Probes print what they observed and
exit 0, so a blocked attack reads as a line such as `read: denied`, the same under every way.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.lib.cli import imagetool
from tests.lib.images import busybox_image
from tests.lib.rootless import PYTHON as USER_PYTHON
from tests.lib.rootless import RootlessUser

BEGIN, END = "==probe-begin==", "==probe-end=="


@dataclass(frozen=True)
class Way:
    executor: str   # embedded | runc
    rootless: bool
    mode: str       # run | build

    @property
    def id(self) -> str:
        return f"{self.executor}-{'rootless' if self.rootless else 'root'}-{self.mode}"


WAYS = [Way(e, r, m) for e in ("embedded", "runc") for r in (False, True) for m in ("run", "build")]


def ways(**only: object) -> list[object]:
    """WAYS (optionally those whose fields equal `only`) as pytest params with readable ids."""
    chosen = [w for w in WAYS if all(getattr(w, k) == v for k, v in only.items())]
    return [pytest.param(w, id=w.id) for w in chosen]


@dataclass
class ProbeResult:
    code: int
    out: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


def _between(text: str) -> str:
    lines = text.splitlines()
    try:
        start = lines.index(BEGIN)
        end = lines.index(END, start)
    except ValueError:
        return ""
    return "".join(line + "\n" for line in lines[start + 1:end])


class Prober:
    """Runs probes as root (the test's local store) or as the rootless user (its own store)."""

    def __init__(self, layout: Path, user: RootlessUser | None) -> None:
        self.layout = layout
        self.user = user
        self._ready: set[bool] = set()

    def _ensure_image(self, rootless: bool) -> None:
        if rootless in self._ready:
            return
        if rootless:
            assert self.user is not None
            self.user.imagetool("copy", "-q", f"oci:{self.layout}:latest", "busybox")
        else:
            imagetool("copy", "-q", f"oci:{self.layout}:latest", "busybox")
        self._ready.add(rootless)

    def _imagetool(self, way: Way, *args: str, timeout: float, wrap: tuple[str, ...] = ()) \
            -> subprocess.CompletedProcess[str]:
        if wrap:  # a command that sets something up (a keyring...) and execs imagetool
            if way.rootless:
                assert self.user is not None
                return self.user.run([*wrap, str(USER_PYTHON), "-m", "imagetool", *args], check=False, timeout=timeout)
            return subprocess.run([*wrap, sys.executable, "-m", "imagetool", *args], capture_output=True, text=True,
                                  timeout=timeout)
        if way.rootless:
            assert self.user is not None
            return self.user.imagetool(*args, check=False, timeout=timeout)
        return imagetool(*args, check=False, timeout=timeout)

    def probe(self, way: Way, script: str, *, flags: tuple[str, ...] = (), build_flags: tuple[str, ...] | None = None,
              timeout: float = 120, wrap: tuple[str, ...] = ()) -> ProbeResult:
        """Run `script` with `flags` (for `run`; `build_flags` for a build, default the same flags).

        `wrap`: a command line imagetool runs under (it must exec its remaining arguments).
        """
        self._ensure_image(way.rootless)
        wrapped = f"echo {BEGIN}; {script}\necho {END}"
        if way.mode == "run":
            proc = self._imagetool(way, "run", "--rm", "--runtime", way.executor, *flags, "busybox",
                                   "sh", "-c", wrapped, timeout=timeout, wrap=wrap)
            return ProbeResult(proc.returncode, _between(proc.stdout), proc.stderr)
        context = self.context_dir(way)
        try:
            (context / "Dockerfile").write_text(f"FROM busybox\nRUN {json.dumps(['sh', '-c', wrapped])}\n")
            if way.rootless:
                assert self.user is not None
                self.user.give(context)
            extra = flags if build_flags is None else build_flags
            proc = self._imagetool(way, "build", "--no-cache", "--runtime", way.executor, *extra, str(context),
                                   timeout=timeout, wrap=wrap)
            return ProbeResult(proc.returncode, _between(proc.stdout), proc.stderr)
        finally:
            shutil.rmtree(context, ignore_errors=True)

    def context_dir(self, way: Way) -> Path:
        """A directory the way's user owns (build contexts, files a probe needs)."""
        if way.rootless:
            assert self.user is not None
            return self.user.mkdtemp("ctx-")
        return Path(tempfile.mkdtemp(prefix="imagetool-probe-"))


@pytest.fixture(scope="session")
def busybox_layout() -> Iterator[Path]:
    """The busybox test image as an OCI layout every user can read."""
    base = Path(tempfile.mkdtemp(prefix="imagetool-busybox-", dir="/tmp"))
    base.chmod(0o755)
    try:
        busybox_image(base / "layout", "latest")
        for dirpath, _dirnames, filenames in os.walk(base):
            os.chmod(dirpath, 0o755)
            for name in filenames:
                os.chmod(os.path.join(dirpath, name), 0o644)
        yield base / "layout"
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def prober(busybox_layout: Path, request: pytest.FixtureRequest) -> Prober:
    """A Prober for the test's `way` parameter; the rootless user is made only when a rootless way asks."""
    callspec = getattr(request.node, "callspec", None)
    way = callspec.params.get("way") if callspec else None
    user = request.getfixturevalue("rootless_user") if isinstance(way, Way) and way.rootless else None
    return Prober(busybox_layout, user)
