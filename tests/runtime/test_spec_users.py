"""The spec builder, USER resolution and the root-confined path join, on their own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from imagetool.errors import ContainerError
from imagetool.runtime.paths import read_in_root, secure_join
from imagetool.runtime.flags import parse_volume
from imagetool.runtime.spec import (DEFAULT_CAPABILITIES, MASKED_PATHS, READONLY_PATHS, RunOptions, build_spec,
                                    merge_env)
from imagetool.runtime.users import UserError, resolve

CONFIG = {"Entrypoint": ["/bin/ep"], "Cmd": ["default"], "Env": ["PATH=/bin", "A=1"], "WorkingDir": "/srv",
          "User": "app"}


def test_spec_from_image_config() -> None:
    spec = build_spec(CONFIG, RunOptions())
    p = spec["process"]
    assert p["args"] == ["/bin/ep", "default"]
    assert p["cwd"] == "/srv"
    assert p["env"][:2] == ["PATH=/bin", "A=1"]
    assert spec["annotations"]["org.imagetool.user"] == "app"
    # Docker's set, less CAP_NET_RAW in the (default) private network: raw packets could reach slirp4netns
    assert p["capabilities"]["bounding"] == [c for c in DEFAULT_CAPABILITIES if c != "CAP_NET_RAW"]
    assert "CAP_SYS_ADMIN" not in DEFAULT_CAPABILITIES
    for network in ("none", "host"):
        caps = build_spec(CONFIG, RunOptions(network=network))["process"]["capabilities"]["bounding"]
        assert caps == DEFAULT_CAPABILITIES
    assert spec["linux"]["maskedPaths"] == MASKED_PATHS and "/proc/kcore" in MASKED_PATHS
    assert "/proc/sysrq-trigger" in READONLY_PATHS
    assert {n["type"] for n in spec["linux"]["namespaces"]} == {"pid", "ipc", "uts", "mount", "network", "cgroup"}
    assert [m["destination"] for m in spec["mounts"]][:2] == ["/proc", "/dev"]


def test_spec_overrides() -> None:
    spec = build_spec(CONFIG, RunOptions(args=["x", "y"], env=["A=2", "B=3"], workdir="/w", user="0",
                                         network="host", hostname="h", terminal=True))
    p = spec["process"]
    assert p["args"] == ["/bin/ep", "x", "y"]
    assert "A=2" in p["env"] and "A=1" not in p["env"] and "B=3" in p["env"] and "TERM=xterm" in p["env"]
    assert p["cwd"] == "/w" and p["terminal"] is True and spec["hostname"] == "h"
    assert "network" not in {n["type"] for n in spec["linux"]["namespaces"]}
    assert build_spec(CONFIG, RunOptions(entrypoint=[], args=["sh"]))["process"]["args"] == ["sh"]
    assert build_spec({"Cmd": ["sh"]}, RunOptions())["process"]["env"][0].startswith("PATH=")


def test_spec_errors() -> None:
    with pytest.raises(ContainerError):
        build_spec({}, RunOptions())
    with pytest.raises(ContainerError):
        build_spec(CONFIG, RunOptions(workdir="relative"))
    with pytest.raises(ContainerError):
        merge_env([], ["=novalue"])
    with pytest.raises(ContainerError):
        parse_volume("/nonexistent-path-for-test:/x")
    with pytest.raises(ContainerError):
        parse_volume(f"{os.getcwd()}:/x:rx")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:App:/home/app:/bin/sh\n"
                                "# comment\nbroken line\nnobody:x:65534:65534::/nonexistent:/bin/false\n")
    (etc / "group").write_text("root:x:0:\napp:x:1001:\nwheel:x:10:app,other\naudio:x:29:app\n"
                               "nogroup:x:65534:\n")
    return tmp_path


def test_users(root: Path) -> None:
    app = resolve("app", str(root))
    assert (app.uid, app.gid, app.home, sorted(app.groups)) == (1000, 1001, "/home/app", [10, 29, 1001])
    assert (resolve("1000", str(root)).uid, resolve("1000", str(root)).gid) == (1000, 1001)
    numeric = resolve("4242", str(root))
    assert (numeric.uid, numeric.gid, numeric.home) == (4242, 0, "/")
    assert resolve("app:wheel", str(root)).gid == 10
    assert resolve("app:77", str(root)).gid == 77
    assert resolve("", str(root)).uid == 0 and resolve("", str(root)).home == "/root"
    with pytest.raises(UserError):
        resolve("ghost", str(root))
    with pytest.raises(UserError):
        resolve("app:ghosts", str(root))


def test_secure_join_stays_inside(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (tmp_path / "outside").write_text("host secret")
    os.symlink("/../../outside", root / "etc" / "abs")
    os.symlink("../../../outside", root / "etc" / "rel")
    os.symlink("/etc", root / "etc" / "loop")
    for link in ("abs", "rel"):
        joined = secure_join(str(root), f"/etc/{link}")
        assert joined.startswith(str(root) + "/"), joined
        assert read_in_root(str(root), f"etc/{link}") is None
    assert secure_join(str(root), "/etc/loop/loop/x") == str(root / "etc" / "x")
    assert secure_join(str(root), "../../etc") == str(root / "etc")
    os.symlink("self", root / "self")
    with pytest.raises(OSError):
        secure_join(str(root), "/self/x")


def test_image_user_symlinked_passwd_cannot_read_host_files(tmp_path: Path) -> None:
    root = tmp_path / "r"
    (root / "etc").mkdir(parents=True)
    (tmp_path / "passwd").write_text("evil:x:0:0::/:/bin/sh\n")
    os.symlink("../../passwd", root / "etc" / "passwd")
    with pytest.raises(UserError):
        resolve("evil", str(root))
