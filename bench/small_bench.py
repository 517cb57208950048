"""Small commands near the interpreter floor, each against skopeo in the same run.

    python bench/small_bench.py [--repeat 11]

A small image (2 layers of 10 kB) in a local registry: `--help`, `inspect docker://`, a no-op
copy (the destination already holds the image), a same-registry copy to a new repository (blob
mounts), and `inspect oci:`. Targets are wall times of the whole process on a quiet machine; CPU
times are printed too (they hold up under load, wall times do not).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import IMAGETOOL, SKOPEO, compile_package, report, report_cpu, run, varied  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=11)
    args = parser.parse_args()
    from tests.lib.images import random_image
    from tests.lib.registry import start_registry, stop_registry

    compile_package()
    with tempfile.TemporaryDirectory(prefix="small-bench-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        random_image(work / "small", "v1", n_layers=2, size=10_000)
        reg = start_registry(work / "reg", "a")
        env = {"XDG_CACHE_HOME": str(work / "cache"), "IMAGETOOL_STORE": str(work / "store")}
        flags = ["--src-tls-verify=false", "--dest-tls-verify=false"]
        src = f"docker://{reg.host}/small/img:v1"
        rows = []
        try:
            run([*IMAGETOOL, "copy", "-q", "--dest-tls-verify=false", f"oci:{work}/small:v1", src], env=env, repeat=1)
            n = args.repeat
            rows.append(("--help", run([*IMAGETOOL, "--help"], env=env, repeat=n),
                         run([*SKOPEO, "--help"], repeat=n), "<= 0.04 s"))
            rows.append(("inspect docker:// (small image)",
                         run([*IMAGETOOL, "inspect", "--tls-verify=false", src], env=env, repeat=n),
                         run([*SKOPEO, "inspect", "--tls-verify=false", src], repeat=n), "<= 0.07 s"))
            rows.append(("no-op copy (same tag, same registry)",
                         run([*IMAGETOOL, "copy", "-q", *flags, src, src], env=env, repeat=n),
                         run([*SKOPEO, "copy", "-q", *flags, src, src], repeat=n), "<= 0.08 s"))
            rows.append(("same-registry copy to a new repo (mount)",
                         varied(lambda i: [*IMAGETOOL, "copy", "-q", *flags, src,
                                           f"docker://{reg.host}/mount/ours{i}:v1"], env=env, repeat=n),
                         varied(lambda i: [*SKOPEO, "copy", "-q", *flags, src,
                                           f"docker://{reg.host}/mount/skopeo{i}:v1"], repeat=n), "<= 0.10 s"))
            rows.append(("inspect oci:", run([*IMAGETOOL, "inspect", f"oci:{work}/small:v1"], env=env, repeat=n),
                         run([*SKOPEO, "inspect", f"oci:{work}/small:v1"], repeat=n), "(reported)"))
        finally:
            stop_registry(reg)
        report(rows)
        report_cpu(rows, "skopeo")


if __name__ == "__main__":
    main()
