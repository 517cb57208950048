"""Container start-up: `imagetool run --rm busybox true` against `runc run` of the same bundle.

    python bench/run_bench.py [--repeat 11]

The bundle for runc is the spec imagetool builds for the same image, with the same
overlay root (mounted once, outside the timing); imagetool's figure is the whole
command: resolving the image, the spec, the overlay, namespaces and exec.
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

from bench.common import report, run  # noqa: E402

IMAGETOOL = [sys.executable, "-m", "imagetool"]


def prepare(work: Path) -> tuple[dict[str, str], Path, Path]:
    """A store holding `busybox`, its layers unpacked; a runc bundle of the same image; a helper bundle."""
    from imagetool.copy import copy_image
    from imagetool.runtime import overlay
    from imagetool.runtime.container import Container
    from imagetool.runtime.image import layer_dirs, load
    from imagetool.runtime.spec import RunOptions, build_spec
    from imagetool.store import images
    from imagetool.store.layout import LayoutStore
    from imagetool.transports import parse_image_name
    from tests.lib.images import busybox_image

    store_path = work / "store"
    env = {"IMAGETOOL_STORE": str(store_path)}
    os.environ.update(env)
    busybox_image(work / "layout", "latest")
    copy_image(parse_image_name(f"oci:{work / 'layout'}:latest"), parse_image_name("busybox"))
    store = LayoutStore.open(store_path)
    image = load(store, images.resolve(store, parse_image_name("busybox").named))  # type: ignore[attr-defined]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=11)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="imagetool-run-bench-"))
    bundle = None
    try:
        env, bundle, helper_bundle = prepare(work)
        subprocess.run([*IMAGETOOL, "run", "--rm", "busybox", "true"], env={**os.environ, **env}, check=True)
        ours = run([*IMAGETOOL, "run", "--rm", "busybox", "true"], env=env, repeat=args.repeat)
        theirs = run(["runc", "run", "--bundle", str(bundle), f"bench-{os.getpid()}"], repeat=args.repeat)
        from imagetool.runtime.container import HELPER

        from imagetool.runtime.overlay import workdir_for

        executor = run([sys.executable, "-S", "-I", HELPER, str(helper_bundle), "2"], repeat=args.repeat,
                       before=lambda: workdir_for(work / "upper2"))  # a volatile overlay needs a fresh one
        report([("run --rm busybox true vs runc run", ours, theirs, "<= 1.0x"),
                ("executor only (helper) vs runc run", executor, theirs, "(breakdown)")])
    finally:
        if bundle is not None:
            subprocess.run(["umount", "-l", str(bundle / "rootfs")], check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
