"""The rootless path: a user namespace made by the helper, its maps written from outside."""

from __future__ import annotations

import subprocess
from pathlib import Path

from imagetool.runtime import idmap
from imagetool.runtime.container import Container
from imagetool.runtime.image import layer_dirs, load
from imagetool.runtime.linux import CAPABILITIES
from imagetool.runtime.spec import RunOptions, build_spec, default_capabilities
from imagetool.store.layout import LayoutStore
from imagetool.transports.local import parse as parse_local


def _lowers(store_path: Path) -> tuple[dict, list[Path]]:  # type: ignore[type-arg]
    store = LayoutStore.open(store_path)
    image = load(store, parse_local("busybox").resolve(store))
    return image.run_config, layer_dirs(store, image.layers)


def test_container_in_a_user_namespace(busybox: str, local_store: Path, tmp_path: Path) -> None:
    config, lowers = _lowers(local_store)
    script = ("cat /proc/self/uid_map /proc/self/gid_map; id -u; echo $$; hostname;"
              "echo hi > /dev/null && head -c 4 /dev/zero | wc -c; readlink /proc/self/ns/user")
    out = tmp_path / "out"
    spec = build_spec(config, RunOptions(args=["sh", "-c", script], hostname="userns"))
    maps = ([(0, 0, 65536)], [(0, 0, 65536)])
    with open(out, "wb") as f:
        code = Container(spec, lowers, tmp_path / "upper", userns=True, idmaps=maps).run(
            stdout=f, stdin=subprocess.DEVNULL)
    assert code == 0
    lines = out.read_text().split("\n")
    assert lines[0].split() == ["0", "0", "65536"] and lines[1].split() == ["0", "0", "65536"]
    assert lines[2:6] == ["0", "1", "userns", "4"]
    host_userns = Path("/proc/self/ns/user").readlink()
    assert lines[6] != str(host_userns)


def test_maps_for_and_subordinate_ranges(tmp_path: Path) -> None:
    subuid = tmp_path / "subuid"
    subuid.write_text("# comment\nalice:100000:65536\n1001:200000:1000\nbad:line\n")
    assert idmap.subordinate(str(subuid), "alice", 1000) == (100000, 65536)
    assert idmap.subordinate(str(subuid), "bob", 1001) == (200000, 1000)
    assert idmap.subordinate(str(subuid), "carol", 1002) is None
    assert idmap.subordinate(str(tmp_path / "missing"), "alice", 1000) is None
    uids, gids = idmap.maps_for(4242, 4343, str(subuid), str(subuid))
    assert uids[0] == (0, 4242, 1) and gids[0] == (0, 4343, 1)
    # 4242 has no entry: only its own id is mapped
    assert len(uids) == 1


ROOTLESS_SCRIPT = """
import sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from tests.lib.images import busybox_files, make_layer, write_image
from imagetool.store.layout import LayoutStore
from imagetool.runtime.image import layer_dirs, load
from imagetool.runtime.spec import RunOptions, build_spec
from imagetool.runtime.container import Container
work = Path(sys.argv[2])
desc = write_image(work / "store", "latest", [make_layer(busybox_files(), None)], config={"Cmd": ["sh"]})
store = LayoutStore.open(work / "store")
image = load(store, desc)
spec = build_spec(image.run_config, RunOptions(args=["sh", "-c", sys.argv[3]]))
sys.exit(Container(spec, layer_dirs(store, image.layers), work / "upper").run())
"""


def test_rootless_as_an_unprivileged_user(tmp_path: Path) -> None:
    """The whole library path as uid 65534 (the system python: the package's own stdlib-only parts suffice)."""
    import shutil
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="imagetool-rootless-", dir="/tmp"))
    try:
        work.chmod(0o755)
        (work / "t.py").write_text(ROOTLESS_SCRIPT)
        (work / "w").mkdir()
        shutil.chown(work / "w", 65534, 65534)
        script = ("id -u; cat /proc/self/uid_map; echo $$; hostname; echo x > /etc/new && cat /etc/new;"
                  "grep CapEff /proc/self/status; exit 4")
        proc = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
                               "/usr/bin/python3", str(work / "t.py"), str(Path(__file__).parents[2]),
                               str(work / "w"), script], capture_output=True, text=True, timeout=120,
                              env={"HOME": str(work), "PATH": "/usr/bin:/bin"})
        assert proc.returncode == 4, proc.stderr
        lines = proc.stdout.splitlines()
        assert lines[0] == "0" and lines[1].split() == ["0", "65534", "1"]
        assert lines[2:5] == ["1", "container", "x"]
        default = sum(1 << CAPABILITIES.index(c) for c in default_capabilities("private"))
        assert int(lines[5].split()[1], 16) == default
        # the container's change is in its upperdir, owned by the unprivileged user on the host
        new = work / "w" / "upper" / "etc" / "new"
        assert new.read_text() == "x\n" and new.stat().st_uid == 65534
    finally:
        shutil.rmtree(work, ignore_errors=True)
