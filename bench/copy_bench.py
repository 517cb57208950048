"""Copy benchmarks of the foundation issue, as ratios against skopeo measured in the same run.

    python bench/copy_bench.py [--mib 500] [--layers 5]

Cases: uncompressed dir: -> oci: (gzip), oci: gzip -> oci: zstd, plain oci: -> oci:, the file
transports (oci: -> dir:, dir: -> docker-archive:, docker-archive: -> oci-archive:), peak RSS,
and the start-up cost of `imagetool --help` / `imagetool inspect oci:...`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import IMAGETOOL, SKOPEO, Measure, compile_package, random_layout, report, report_cpu, run  # noqa: E402



def make_dir_image(root: Path, mib: int, layers: int) -> None:
    """An uncompressed image in skopeo's dir: format, via skopeo from a generated OCI layout."""
    random_layout(root / "gen", mib, layers)
    run(SKOPEO + ["copy", "-q", f"oci:{root}/gen:v1", f"dir:{root}/dir"], repeat=1)
    shutil.rmtree(root / "gen")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=500)
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    compile_package()
    root = Path(tempfile.mkdtemp(prefix="imagetool-bench-", dir=os.environ.get("BENCH_TMP", "/var/tmp")))
    try:
        make_dir_image(root, args.mib, args.layers)
        src_dir = f"dir:{root}/dir"

        def clean(*paths: str) -> callable:  # type: ignore[valid-type]
            return lambda: [shutil.rmtree(root / p, ignore_errors=True) for p in paths]

        rows: list[tuple[str, Measure, Measure | None, str]] = []
        ours = run(IMAGETOOL + ["copy", "-q", src_dir, f"oci:{root}/a:v1"], before=clean("a"), repeat=args.repeat)
        theirs = run(SKOPEO + ["copy", "-q", src_dir, f"oci:{root}/b:v1"], before=clean("b"), repeat=args.repeat)
        rows.append((f"dir: ({args.mib} MiB raw) -> oci: gzip", ours, theirs, "<= 0.4x, RSS <= 80 MiB"))
        ours = run(IMAGETOOL + ["copy", "-q", "--dest-compress-format", "zstd", f"oci:{root}/b:v1",
                                f"oci:{root}/z1:v1"], before=clean("z1"), repeat=args.repeat)
        theirs = run(SKOPEO + ["copy", "-q", "--dest-compress-format", "zstd", f"oci:{root}/b:v1",
                               f"oci:{root}/z2:v1"], before=clean("z2"), repeat=args.repeat)
        rows.append(("oci: gzip -> oci: zstd", ours, theirs, "<= 0.5x, RSS <= 80 MiB"))
        ours = run(IMAGETOOL + ["copy", "-q", f"oci:{root}/b:v1", f"oci:{root}/p1:v1"], before=clean("p1"),
                   repeat=args.repeat)
        theirs = run(SKOPEO + ["copy", "-q", f"oci:{root}/b:v1", f"oci:{root}/p2:v1"], before=clean("p2"),
                     repeat=args.repeat)
        rows.append(("oci: -> oci: (plain)", ours, theirs, "<= 1.0x, RSS <= 80 MiB"))
        ours = run(IMAGETOOL + ["copy", "-q", f"oci:{root}/b:v1", f"dir:{root}/d1"], before=clean("d1"),
                   repeat=args.repeat)
        theirs = run(SKOPEO + ["copy", "-q", f"oci:{root}/b:v1", f"dir:{root}/d2"], before=clean("d2"),
                     repeat=args.repeat)
        rows.append(("oci: -> dir: (plain)", ours, theirs, "<= 1.0x"))
        archives = lambda *names: lambda: [(root / n).unlink(missing_ok=True) for n in names]  # noqa: E731
        ours = run(IMAGETOOL + ["copy", "-q", src_dir, f"docker-archive:{root}/a1.tar"], before=archives("a1.tar"),
                   repeat=args.repeat)
        theirs = run(SKOPEO + ["copy", "-q", src_dir, f"docker-archive:{root}/a2.tar"], before=archives("a2.tar"),
                     repeat=args.repeat)
        rows.append(("dir: -> docker-archive: (plain)", ours, theirs, "<= 1.0x"))
        ours = run(IMAGETOOL + ["copy", "-q", f"docker-archive:{root}/a2.tar", f"oci-archive:{root}/o1.tar"],
                   before=archives("o1.tar"), repeat=args.repeat)
        theirs = run(SKOPEO + ["copy", "-q", f"docker-archive:{root}/a2.tar", f"oci-archive:{root}/o2.tar"],
                     before=archives("o2.tar"), repeat=args.repeat)
        rows.append(("docker-archive: -> oci-archive: gzip", ours, theirs, "<= 1.0x"))
        help_ = run(IMAGETOOL + ["--help"], repeat=5)
        rows.append(("imagetool --help (process)", help_, None, "<= 0.150 s"))
        inspect = run(IMAGETOOL + ["inspect", f"oci:{root}/b:v1"], repeat=5)
        sk_inspect = run(SKOPEO + ["inspect", f"oci:{root}/b:v1"], repeat=5)
        rows.append(("inspect oci: (process)", inspect, sk_inspect, "<= 0.150 s"))
        report(rows)
        report_cpu(rows, "skopeo")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
