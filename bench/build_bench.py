"""Build benchmarks of the builder issue, as ratios against `buildah bud --runtime runc` in the same run.

    python bench/build_bench.py [--storage-driver overlay|vfs] [--repeat 3]

Cases, each FROM a busybox base made from Debian's busybox-static and given to both builders:
a 10-step Dockerfile with 3 RUNs built cold (--no-cache), the same rebuilt with nothing changed
(buildah --layers), and one RUN creating 20,000 files, committed. The two builders take turns, round
after round, so that a change of the machine's load hits both; CPU times (user+sys) are reported too,
as they hold up under load where wall times do not.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import IMAGETOOL, Measure, compile_package, interleaved, report, report_cpu, run  # noqa: E402

BASE = "localhost/busybox:bench"

TEN_STEPS = f"""FROM {BASE}
COPY tree/ /app/
RUN mkdir -p /var/data && echo ready > /var/data/state
ENV APP=/app
WORKDIR /app
RUN ls -R /app > /app/listing
COPY one.txt ./
RUN echo done > /app/done
LABEL bench=yes
CMD ["/app/run"]
"""

MANY_FILES = f"""FROM {BASE}
RUN mkdir /data && cd /data && i=0 && while [ $i -lt 20000 ]; do echo $i > f$i; i=$((i+1)); done
"""


def make_context(root: Path, files: int, dockerfile: str) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for n in range(files):
        d = root / "tree" / f"d{n // 200}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{n}").write_bytes(os.urandom(64) + str(n).encode())
    (root / "one.txt").write_text("one\n")
    (root / "Dockerfile").write_text(dockerfile)


def make_base(work: Path, buildah: list[str], env: dict[str, str]) -> None:
    """The same busybox image in our store and in buildah's."""
    from tests.lib.images import busybox_image

    layout = work / "base"
    busybox_image(layout, "latest")
    subprocess.run([*IMAGETOOL, "--insecure-policy", "copy", "-q", f"oci:{layout}:latest", BASE],
                   env={**os.environ, **env}, check=True)
    image_id = subprocess.run([*buildah, "pull", "-q", f"oci:{layout}:latest"], check=True,
                              capture_output=True, text=True).stdout.strip()
    subprocess.run([*buildah, "tag", image_id, BASE], check=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--storage-driver", default="overlay", help="buildah's storage driver")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of each case, ours and buildah's in turn")
    args = parser.parse_args()
    compile_package()
    with tempfile.TemporaryDirectory(prefix="build-bench-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        buildah = ["buildah", "--root", str(work / "root"), "--runroot", str(work / "runroot"),
                   "--storage-driver", args.storage_driver]
        bud = [*buildah, "bud", "-q", "--runtime", "runc", "--pull-never"]
        env = {"IMAGETOOL_STORE": str(work / "store")}
        ours_build = [*IMAGETOOL, "--insecure-policy", "build", "-q", "--pull", "never"]
        make_base(work, buildah, env)
        rows: list[tuple[str, Measure, Measure | None, str]] = []

        ten = work / "ten"
        make_context(ten, 2000, TEN_STEPS)
        ours, theirs = interleaved([([*ours_build, "--no-cache", "-t", "bench", str(ten)], env, None),
                                    ([*bud, "--no-cache", "--layers=false", "-t", "bench", str(ten)], None, None)],
                                   args.repeat)
        rows.append(("cold build: 10 steps, 3 RUNs", ours, theirs, "<= 0.2x"))
        run([*ours_build, "-t", "bench", str(ten)], env=env, repeat=1)
        run([*bud, "--layers", "-t", "bench", str(ten)], repeat=1)
        ours, theirs = interleaved([([*ours_build, "-t", "bench", str(ten)], env, None),
                                    ([*bud, "--layers", "-t", "bench", str(ten)], None, None)], args.repeat)
        rows.append(("rebuild, nothing changed", ours, theirs, "<= 0.3x"))

        many = work / "many"
        make_context(many, 0, MANY_FILES)
        ours, theirs = interleaved([([*ours_build, "--no-cache", "-t", "many", str(many)], env, None),
                                    ([*bud, "--no-cache", "--layers=false", "-t", "many", str(many)], None, None)],
                                   args.repeat)
        rows.append(("one RUN creating 20,000 files", ours, theirs, "<= 0.3x"))
        print(f"buildah storage driver: {args.storage_driver}")
        report(rows)
        report_cpu(rows, peer="buildah")


if __name__ == "__main__":
    main()
