"""Build benchmarks of the builder issue, as ratios against `buildah bud` measured in the same run.

    python bench/build_bench.py

Cases that need no RUN (the RUN cases wait for the embedded runtime): a 10-step Dockerfile
FROM scratch (COPY of a 2,000-file tree, COPYs and config steps) built cold with --no-cache,
and rebuilt with nothing changed (buildah --layers); a 20,000-file COPY, committed.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import report, run  # noqa: E402

IMAGETOOL = [sys.executable, "-m", "imagetool"]

TEN_STEPS = """FROM scratch
COPY tree/ /app/
ENV APP=/app
WORKDIR /app
COPY one.txt ./
LABEL bench=yes
COPY --chmod=0644 two.txt /etc/
USER 1000
EXPOSE 8080
CMD ["/app/run"]
"""


def make_context(root: Path, files: int) -> None:
    for n in range(files):
        d = root / "tree" / f"d{n // 200}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{n}").write_bytes(os.urandom(64) + str(n).encode())
    (root / "one.txt").write_text("one\n")
    (root / "two.txt").write_text("two\n")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="build-bench-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        buildah = ["buildah", "--root", str(work / "root"), "--runroot", str(work / "runroot"),
                   "--storage-driver", "vfs"]
        env = {"IMAGETOOL_STORE": str(work / "store")}
        rows = []
        for name, files, target in (("10 steps, 2,000 files", 2000, "<= 0.7x"), ("20,000-file COPY", 20000, "<= 1.0x")):
            ctx = work / f"ctx-{files}"
            make_context(ctx, files)
            (ctx / "Dockerfile").write_text(TEN_STEPS if files == 2000 else "FROM scratch\nCOPY tree/ /data/\n")
            ours = run([*IMAGETOOL, "build", "-q", "--no-cache", "-t", "bench", str(ctx)], env=env)
            theirs = run([*buildah, "bud", "-q", "--no-cache", "--layers=false", "-t", "bench", str(ctx)])
            rows.append((f"cold build: {name}", ours, theirs, target))
            if files == 2000:
                run([*IMAGETOOL, "build", "-q", "-t", "bench", str(ctx)], env=env, repeat=1)
                run([*buildah, "bud", "-q", "--layers", "-t", "bench", str(ctx)], repeat=1)
                ours = run([*IMAGETOOL, "build", "-q", "-t", "bench", str(ctx)], env=env)
                theirs = run([*buildah, "bud", "-q", "--layers", "-t", "bench", str(ctx)])
                rows.append((f"rebuild, nothing changed: {name}", ours, theirs, "<= 0.5x"))
        report(rows)


if __name__ == "__main__":
    main()
