"""linux.set_mount_flags on a real mount tree: mount_setattr(2), and the remount walk kept for older kernels."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.lib.rootless import REPO

SCRIPT = r"""
import os, sys
from imagetool.runtime import linux
top = sys.argv[1]
linux.mount("tmpfs", top, "tmpfs", 0, "size=1m")
os.mkdir(top + "/sub dir")
linux.mount("tmpfs", top + "/sub dir", "tmpfs", 0, "size=1m")
if sys.argv[2] == "fallback":
    linux._SYS_MOUNT_SETATTR = 1 << 20  # no such call: ENOSYS, as on a kernel before 5.12
linux.set_mount_flags(top, linux.MS_RDONLY | linux.MS_NODEV)
for path in (top, top + "/sub dir"):
    flags = os.statvfs(path).f_flag
    print(path == top and "top" or "sub", bool(flags & linux.MS_RDONLY), bool(flags & linux.MS_NODEV))
print(linux.submounts(top) == [top, top + "/sub dir"])
"""


@pytest.mark.parametrize("how", ["mount_setattr", "fallback"])
def test_flags_reach_every_submount(tmp_path: Path, how: str) -> None:
    """Each submount ends read-only and nodev (a name with a space: mountinfo escapes it)."""
    proc = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, "-c", SCRIPT,
                           str(tmp_path), how], capture_output=True, text=True, cwd=REPO, check=True)
    assert proc.stdout.split("\n") == ["top True True", "sub True True", "True", ""]
