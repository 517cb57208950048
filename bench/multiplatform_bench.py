"""Multi-platform build benchmark of the multi-platform issue, as a ratio against buildah in the same run.

    python bench/multiplatform_bench.py [--storage-driver overlay|vfs]

A two-platform busybox index (this machine's busybox and Debian's busybox-static:arm64) is the
base of a few RUN steps, built for linux/amd64 and linux/arm64 into a manifest list by both
builders (`buildah build --platform A,B --manifest`), cold (--no-cache). The arm64 steps run
under qemu: its binfmt_misc registration is made for the run when the machine has none, and
removed afterwards.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import report, run  # noqa: E402

IMAGETOOL = [sys.executable, "-m", "imagetool"]

STEPS = """FROM {base}
RUN mkdir -p /app && uname -m > /app/arch
RUN i=0; while [ $i -lt 200 ]; do echo $i > /app/f$i; i=$((i+1)); done
RUN ls /app | wc -l > /app/count && cat /app/arch
"""


def arm64_busybox(work: Path) -> bytes:
    subprocess.run(["apt-get", "download", "busybox-static:arm64"], cwd=work, check=True, capture_output=True)
    [deb] = work.glob("*.deb")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(work / "deb")], check=True)
    return (work / "deb" / "bin" / "busybox").read_bytes()


def register_qemu() -> Path | None:
    """qemu-aarch64 registered as Debian does (flags P and F) when nothing runs aarch64 programs yet."""
    from imagetool.descriptor import Platform
    from imagetool.errors import ContainerError
    from imagetool.runtime import binfmt
    from tests.lib.foreign import registration_line

    try:
        binfmt.emulator(Platform("arm64", "linux"))
        return None
    except ContainerError:
        pass
    (binfmt.BINFMT_MISC / "register").write_text(registration_line("qemu-aarch64"))
    return binfmt.BINFMT_MISC / "qemu-aarch64"


def main() -> None:
    from tests.lib.foreign import HOST_ARCH, busybox_platform_index

    parser = argparse.ArgumentParser()
    parser.add_argument("--storage-driver", default="overlay", help="buildah's storage driver")
    args = parser.parse_args()
    added = register_qemu()
    try:
        with tempfile.TemporaryDirectory(prefix="multiplatform-bench-", dir="/var/tmp") as tmp:
            work = Path(tmp)
            busybox_platform_index(work / "base", arm64_busybox(work))
            ctx = work / "ctx"
            ctx.mkdir()
            (ctx / "Dockerfile").write_text(STEPS.format(base=f"oci:{work / 'base'}:latest"))
            platforms = f"linux/{HOST_ARCH},linux/arm64"
            buildah = ["buildah", "--root", str(work / "root"), "--runroot", str(work / "runroot"),
                       "--storage-driver", args.storage_driver]
            env = {"IMAGETOOL_STORE": str(work / "store")}
            n = iter(range(1000))

            def ours_cmd() -> list[str]:
                return [*IMAGETOOL, "--insecure-policy", "build", "-q", "--no-cache", "--platform", platforms,
                        "--manifest", f"ours-{next(n)}", str(ctx)]

            def theirs_cmd() -> list[str]:
                return [*buildah, "build", "-q", "--runtime", "runc", "--no-cache", "--layers=false",
                        "--platform", platforms, "--manifest", f"theirs-{next(n)}", str(ctx)]

            run(ours_cmd(), env=env, repeat=1)  # base images pulled into each store, once
            run(theirs_cmd(), repeat=1)
            ours = run(ours_cmd(), env=env)
            theirs = run(theirs_cmd())
            ours_one = run([*ours_cmd(), "--jobs", "1"], env=env)
            rows = [("two platforms, 3 RUNs each (amd64 + arm64)", ours, theirs, "<= 0.7x"),
                    ("the same, --jobs 1", ours_one, theirs, "-")]
            print(f"buildah storage driver: {args.storage_driver}")
            report(rows)
    finally:
        if added is not None and added.exists():
            added.write_text("-1")


if __name__ == "__main__":
    main()
