"""A PID 1 that fails before the helper's sync steps are over: the failure is its own one line, status 125.

The helper writes N (network) and forks PID 1 at once; PID 1 checks its user before it waits for the
network's word. A user outside the id map makes it fail while slirp4netns is still being attached, and
the helper goes with it: the word then has no reader. slirp4netns is replaced here (through the
IMAGETOOL_SLIRP4NETNS the runtime already reads) by a wrapper that waits until the helper is gone, so
the window is taken every time: before the real one starts (attaching fails), or after it has attached
and before it says so (attaching succeeds).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from imagetool.errors import ContainerError
from imagetool.runtime.container import Container
from imagetool.runtime.image import layer_dirs, load
from imagetool.runtime.spec import RunOptions, build_spec
from imagetool.store.layout import LayoutStore
from imagetool.transports.local import parse as parse_local

WRAPPER = """\
import os, subprocess, sys, time

REAL, WHEN = {real!r}, {when!r}
args = sys.argv[1:]
helper = args[-2]


def gone() -> bool:
    try:
        with open(f"/proc/{{helper}}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def wait_until_gone() -> None:
    deadline = time.monotonic() + 30
    while not gone() and time.monotonic() < deadline:
        time.sleep(0.005)


if WHEN == "before-attach":
    wait_until_gone()
    os.execv(REAL, [REAL, *args])
at = args.index("--ready-fd")
ready = int(args[at + 1])
inner_r, inner_w = os.pipe()
args[at + 1] = str(inner_w)
keep = [inner_w, int(args[args.index("--exit-fd") + 1])]
proc = subprocess.Popen([REAL, *args], pass_fds=keep)
os.close(inner_w)
up = os.read(inner_r, 1)
wait_until_gone()
os.write(ready, up)
os.close(ready)
sys.exit(proc.wait())
"""


@pytest.mark.parametrize("when", ["before-attach", "after-attach"])
def test_user_outside_the_map_while_the_network_is_attached(busybox: str, local_store: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch, when: str) -> None:
    real = shutil.which("slirp4netns")
    assert real is not None, "slirp4netns is a test dependency (scripts/install-deps)"
    wrapper = tmp_path / "slirp4netns"
    wrapper.write_text(f"#!{sys.executable}\n" + WRAPPER.format(real=real, when=when))
    wrapper.chmod(0o755)
    monkeypatch.setenv("IMAGETOOL_SLIRP4NETNS", str(wrapper))
    store = LayoutStore.open(local_store)
    image = load(store, parse_local(busybox).resolve(store))
    spec = build_spec(image.run_config, RunOptions(args=["id"], user="1000:1000", network="private"))
    container = Container(spec, layer_dirs(store, image.layers), tmp_path / "upper", userns=True,
                          idmaps=([(0, 0, 1)], [(0, 0, 1)]))
    with pytest.raises(ContainerError) as failed:
        container.run(stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    assert failed.value.exit_code == 125
    message = str(failed.value)
    assert "\n" not in message and "uid 1000" in message and "not mapped" in message, message
