"""Images that try to aim the runtime's mounts at the host, and the helper's import budget."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from imagetool.copy import copy_image
from imagetool.runtime.container import HELPER
from imagetool.transports import parse_image_name
from tests.lib.cli import imagetool
from tests.lib.images import busybox_files, make_layer, write_image


def test_symlinked_mountpoints_stay_inside_the_root(tmp_path: Path, local_store: Path) -> None:
    victim = tmp_path / "host-file"
    victim.write_text("host data\n")
    victim_dir = tmp_path / "host-dir"
    victim_dir.mkdir()
    files = busybox_files()
    files["etc/hosts"] = f"->{victim}"              # an absolute link to a host file
    victim2 = tmp_path / "host-file-2"
    victim2.write_text("host data 2\n")
    files["etc/resolv.conf"] = "->../../../../../../" + str(victim2).lstrip("/")
    files["mnt"] = f"->{victim_dir}"                # a volume target that points at a host directory
    layout = tmp_path / "layout"
    write_image(layout, "latest", [make_layer(files)], config={"Cmd": ["/bin/sh"]})
    copy_image(parse_image_name(f"oci:{layout}:latest"), parse_image_name("hostile"))
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "v").write_text("volume")
    out = imagetool("run", "--rm", "-v", f"{volume}:/mnt", "hostile", "sh", "-c",
                    "cat /etc/hosts | head -1; cat /mnt/v; echo; echo pwned > /etc/hosts").stdout
    assert out.splitlines()[:2] == ["127.0.0.1\tlocalhost", "volume"]
    assert victim.read_text() == "host data\n" and victim2.read_text() == "host data 2\n"
    assert list(victim_dir.iterdir()) == []


def test_helper_imports_only_the_standard_library_and_its_own_modules() -> None:
    root = str(Path(HELPER).parents[2])
    code = (f"import sys; sys.path.insert(0, {root!r}); import imagetool.runtime.helper; "
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('imagetool'))))")
    out = subprocess.run([sys.executable, "-S", "-I", "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["imagetool", "imagetool.pathresolve", "imagetool.runtime",
                                  "imagetool.runtime.console", "imagetool.runtime.helper", "imagetool.runtime.linux",
                                  "imagetool.runtime.paths",
                                  "imagetool.runtime.rootfs", "imagetool.runtime.users"]


def test_helper_script_starts_without_the_package_init_files() -> None:
    """Run as the executor runs it (-S -I, a script): neither typing nor re is loaded on the way in."""
    proc = subprocess.run([sys.executable, "-S", "-I", "-X", "importtime", HELPER], capture_output=True, text=True)
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time")}
    assert {"imagetool.runtime.linux", "imagetool.runtime.rootfs", "warnings"} <= imported
    assert not {"typing", "re"} & imported, sorted(imported)
    assert "IndexError" in proc.stderr  # it got as far as reading its arguments (none were given)
