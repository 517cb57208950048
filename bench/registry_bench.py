"""Registry benchmarks of the registry issue, as ratios against skopeo measured in the same run.

    python bench/registry_bench.py [--mib 500] [--layers 5] [--raw]

The image has gzip layers of random data (--raw: uncompressed ones, which skopeo compresses on the
way and imagetool pushes as they are, so the tools do different work). Loopback registries (the
real `docker-registry`, plain HTTP). Cases: push oci: -> empty registry, registry -> another
empty registry, pull registry -> oci:, same-registry copy into a new repository (mount), no-op
copy, `inspect docker://` of a small image (process time), and the peak RSS of the big copies.
Each line also gives the registries' CPU time: on two cores the registry's share of the machine
bounds what a client can gain.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    IMAGETOOL,
    SKOPEO,
    Measure,
    compile_package,
    median,
    random_layout,
    report,
    report_cpu,
    run,
    varied,
)


def registry_cpu(*registries: object) -> float:
    """CPU seconds (user+sys) the registry processes have used so far."""
    total = 0
    for reg in registries:
        fields = Path(f"/proc/{reg.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()  # type: ignore[attr-defined]
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=500)
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--raw", action="store_true", help="uncompressed layers")
    args = parser.parse_args()
    from tests.lib.registry import start_registry, stop_registry

    compile_package()
    with tempfile.TemporaryDirectory(prefix="registry-bench-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        random_layout(work / "src", args.mib, args.layers, gzip=not args.raw)
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
        registry_seconds: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
        try:
            src = f"oci:{work}/src:v1"
            reg_src = f"docker://{a.host}/push/img:v1"
            wipe_b = lambda: shutil.rmtree(b.root, ignore_errors=True)  # noqa: E731
            big = [  # (case, target, source and destination, what runs before each copy)
                ("push oci: -> empty registry", "<= 0.6x", [src, reg_src], wipe(a)),
                ("registry -> another empty registry", "<= 0.7x", [reg_src, f"docker://{b.host}/r2r/img:v1"], wipe_b),
                ("pull registry -> oci:", "<= 0.6x", [reg_src, f"oci:{work}/pulled:v1"], wipe_dir(work / "pulled")),
            ]
            for case, target, argv, before in big:
                if case.startswith("registry"):
                    # the source image for the rest, pushed by imagetool so that our cache knows it too
                    run([*IMAGETOOL, "copy", "-q", *flags, src, reg_src], env=env, repeat=1)
                # the tools take turns, round by round, so that a change of the machine's load hits both
                runs: dict[str, list[Measure]] = {"ours": [], "skopeo": []}
                for _ in range(args.repeat):
                    for tool, cmd, tool_env in (("ours", IMAGETOOL, env), ("skopeo", SKOPEO, None)):
                        before()
                        cpu0 = registry_cpu(a, b)
                        runs[tool].append(run([*cmd, "copy", "-q", *flags, *argv], env=tool_env, repeat=1))
                        registry_seconds[(case, tool)].append(registry_cpu(a, b) - cpu0)
                rows.append((case, median(runs["ours"]), median(runs["skopeo"]), target))
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
        for (case, tool), secs in registry_seconds.items():
            print(f"registries' CPU during {case:36} with {tool:6}: {statistics.median(secs):.3f} s")


if __name__ == "__main__":
    main()
