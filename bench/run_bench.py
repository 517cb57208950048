"""Container start-up: `imagetool run --rm busybox true` against `buildah run --runtime runc` and `runc run`.

    python bench/run_bench.py [--repeat 11]

imagetool's figure is the whole command with its default confinement (seccomp, private
network): resolving the image, the spec, the overlay, namespaces and exec. buildah runs the
same image in a working container made once (`buildah from`, outside the timing), with its
default isolation and runc. The bundle for runc is the spec imagetool builds for the same
image, with the same overlay root (mounted once, outside the timing).
"""

from __future__ import annotations

import argparse
import json
import marshal
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import IMAGETOOL, compile_package, interleaved, report, report_cpu  # noqa: E402


def prepare(work: Path) -> tuple[dict[str, str], Path, Path]:
    """A store holding `busybox`, its layers unpacked; a runc bundle of the same image; a helper bundle."""
    from imagetool.copy import copy_image
    from imagetool.runtime import overlay
    from imagetool.runtime.container import Container
    from imagetool.runtime.image import layer_dirs, load
    from imagetool.runtime.spec import RunOptions, build_spec
    from imagetool.store.layout import LayoutStore
    from imagetool.transports import parse_image_name
    from tests.lib.images import busybox_image

    store_path = work / "store"
    env = {"IMAGETOOL_STORE": str(store_path)}
    os.environ.update(env)
    busybox_image(work / "layout", "latest")
    copy_image(parse_image_name(f"oci:{work / 'layout'}:latest"), parse_image_name("busybox"))
    store = LayoutStore.open(store_path)
    image = load(store, parse_image_name("busybox").resolve(store))  # type: ignore[attr-defined]
    lowers = layer_dirs(store, image.layers)
    bundle = work / "bundle"
    (bundle / "rootfs").mkdir(parents=True)
    spec = build_spec(image.run_config, RunOptions(args=["true"]))
    container = Container(spec, lowers, work / "upper")
    container._etc_files(bundle)  # the same /etc binds imagetool adds
    container.spec["root"]["path"] = "rootfs"
    (bundle / "config.json").write_text(json.dumps(container.spec))
    (work / "upper").mkdir()
    overlay.mount_on_host(bundle / "rootfs", lowers, work / "upper", overlay.workdir_for(work / "upper"))
    # the executor alone: the helper on a bundle like the one Container writes (its own upperdir)
    helper_bundle = work / "helper-bundle"
    (helper_bundle / "rootfs").mkdir(parents=True)
    (work / "upper2").mkdir()
    extra = {"overlay": {**overlay.describe(lowers, work / "upper2", overlay.workdir_for(work / "upper2")),
                         "volatile": True}}
    (helper_bundle / "helper.marshal").write_bytes(marshal.dumps((container.spec, extra)))
    return env, bundle, helper_bundle


def buildah_container(work: Path) -> list[str]:
    """A buildah working container of the same busybox image; returns the `buildah run` argv."""
    buildah = ["buildah", "--root", str(work / "buildah-root"), "--runroot", str(work / "buildah-runroot"),
               "--storage-driver", "overlay"]
    made = subprocess.run([*buildah, "from", "--name", "bench", "--pull-never", f"oci:{work / 'layout'}:latest"],
                          capture_output=True, text=True)
    if made.returncode != 0:
        raise SystemExit(f"buildah from failed:\n{made.stderr}")
    return [*buildah, "run", "--runtime", "runc", "bench", "true"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=11)
    args = parser.parse_args()
    compile_package()
    work = Path(tempfile.mkdtemp(prefix="imagetool-run-bench-"))
    bundle = None
    try:
        env, bundle, helper_bundle = prepare(work)
        subprocess.run([*IMAGETOOL, "run", "--rm", "busybox", "true"], env={**os.environ, **env}, check=True)
        buildah_run = buildah_container(work)
        from imagetool.runtime.container import HELPER

        from imagetool.runtime.overlay import workdir_for

        ours, theirs, buildah, executor = interleaved([
            ([*IMAGETOOL, "run", "--rm", "busybox", "true"], env, None),
            (["runc", "run", "--bundle", str(bundle), f"bench-{os.getpid()}"], None, None),
            (buildah_run, None, None),
            ([sys.executable, "-S", "-I", HELPER, str(helper_bundle), "2"], None,
             lambda: workdir_for(work / "upper2")),  # a volatile overlay needs a fresh one
        ], args.repeat)
        rows = [("run --rm busybox true vs buildah run", ours, buildah, "<= 0.3x"),
                ("run --rm busybox true vs runc run", ours, theirs, "(reported)"),
                ("executor only (helper) vs runc run", executor, theirs, "(breakdown)")]
        report(rows)
        report_cpu(rows)
    finally:
        if bundle is not None:
            subprocess.run(["umount", "-l", str(bundle / "rootfs")], check=False)
        subprocess.run(["buildah", "--root", str(work / "buildah-root"), "--runroot", str(work / "buildah-runroot"),
                        "--storage-driver", "overlay", "rm", "--all"], check=False, capture_output=True)
        subprocess.run(["umount", "-R", "-l", str(work / "buildah-root")], check=False, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
