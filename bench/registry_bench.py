"""Registry benchmarks of the registry issue, as ratios against skopeo measured in the same run.

    python bench/registry_bench.py [--mib 500] [--layers 5]

Loopback registries (the real `docker-registry`, plain HTTP). Cases: push oci: -> empty
registry, registry -> another empty registry, pull registry -> oci:, same-registry copy into
a new repository (mount), no-op copy, `inspect docker://` of a small image (process time),
and the peak RSS of the big copies.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import IMAGETOOL, SKOPEO, compile_package, random_layout, report, report_cpu, run, varied  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=500)
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from tests.lib.registry import start_registry, stop_registry

    compile_package()
    with tempfile.TemporaryDirectory(prefix="registry-bench-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        random_layout(work / "src", args.mib, args.layers)
        from tests.lib.images import random_image

        random_image(work / "small", "v1", n_layers=2, size=10_000)
        a = start_registry(work / "reg-a", "a")
        b = start_registry(work / "reg-b", "b")
        cache = work / "cache"
        env = {"XDG_CACHE_HOME": str(cache), "IMAGETOOL_STORE": str(work / "store")}
        flags = ["--src-tls-verify=false", "--dest-tls-verify=false"]

        def wipe(reg: object) -> Callable[[], None]:
            def go() -> None:
                shutil.rmtree(reg.root, ignore_errors=True)  # type: ignore[attr-defined]
                shutil.rmtree(cache, ignore_errors=True)
            return go

        def wipe_dir(path: Path) -> Callable[[], None]:
            return lambda: shutil.rmtree(path, ignore_errors=True)

        rows = []
        try:
            src = f"oci:{work}/src:v1"
            ours = run([*IMAGETOOL, "copy", "-q", *flags, src, f"docker://{a.host}/push/img:v1"], env=env,
                       before=wipe(a), repeat=args.repeat)
            theirs = run([*SKOPEO, "copy", "-q", *flags, src, f"docker://{a.host}/push/img:v1"],
                         before=wipe(a), repeat=args.repeat)
            rows.append(("push oci: -> empty registry", ours, theirs, "<= 0.8x"))
            # the source image for the rest (pushed by skopeo last; push once more so our cache knows it)
            run([*IMAGETOOL, "copy", "-q", *flags, src, f"docker://{a.host}/push/img:v1"], env=env, repeat=1)
            reg_src = f"docker://{a.host}/push/img:v1"
            ours = run([*IMAGETOOL, "copy", "-q", *flags, reg_src, f"docker://{b.host}/r2r/img:v1"], env=env,
                       before=lambda: shutil.rmtree(b.root, ignore_errors=True), repeat=args.repeat)
            theirs = run([*SKOPEO, "copy", "-q", *flags, reg_src, f"docker://{b.host}/r2r/img:v1"],
                         before=lambda: shutil.rmtree(b.root, ignore_errors=True), repeat=args.repeat)
            rows.append(("registry -> another empty registry", ours, theirs, "<= 0.8x"))
            ours = run([*IMAGETOOL, "copy", "-q", *flags, reg_src, f"oci:{work}/pulled:v1"], env=env,
                       before=wipe_dir(work / "pulled"), repeat=args.repeat)
            theirs = run([*SKOPEO, "copy", "-q", *flags, reg_src, f"oci:{work}/pulled:v1"],
                         before=wipe_dir(work / "pulled"), repeat=args.repeat)
            rows.append(("pull registry -> oci:", ours, theirs, "<= 0.8x"))
            ours = varied(lambda i: [*IMAGETOOL, "copy", "-q", *flags, reg_src,
                                     f"docker://{a.host}/mount/ours{i}:v1"], env=env, repeat=args.repeat)
            theirs = varied(lambda i: [*SKOPEO, "copy", "-q", *flags, reg_src,
                                       f"docker://{a.host}/mount/skopeo{i}:v1"], repeat=args.repeat)
            rows.append(("same-registry copy to new repo (mount)", ours, theirs, "<= 0.2 s"))
            ours = run([*IMAGETOOL, "copy", "-q", *flags, reg_src, f"docker://{a.host}/mount/ours0:v1"], env=env,
                       repeat=args.repeat)
            theirs = run([*SKOPEO, "copy", "-q", *flags, reg_src, f"docker://{a.host}/mount/skopeo0:v1"],
                         repeat=args.repeat)
            rows.append(("no-op copy", ours, theirs, "<= 0.2 s"))
            run([*IMAGETOOL, "copy", "-q", "--dest-tls-verify=false", f"oci:{work}/small:v1",
                 f"docker://{a.host}/small/img:v1"], env=env, repeat=1)
            small = f"docker://{a.host}/small/img:v1"
            ours = run([*IMAGETOOL, "inspect", "--tls-verify=false", small], env=env, repeat=5)
            theirs = run([*SKOPEO, "inspect", "--tls-verify=false", small], repeat=5)
            rows.append(("inspect docker:// (small image)", ours, theirs, "<= 0.15 s CPU"))
        finally:
            stop_registry(a)
            stop_registry(b)
        report(rows)
        report_cpu(rows, "skopeo")


if __name__ == "__main__":
    main()
