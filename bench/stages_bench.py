"""Parallel stages: two independent 1-second RUN stages and a final stage copying from both, built with
the default --jobs (the CPU count) against the same build with --jobs 1 (target: <= 0.65x).

    python bench/stages_bench.py

Both are cold builds (--no-cache) FROM a busybox base made from Debian's busybox-static.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import report, run  # noqa: E402

IMAGETOOL = [sys.executable, "-m", "imagetool"]
BASE = "localhost/busybox:bench"

TWO_STAGES = f"""FROM {BASE} AS one
RUN sleep 1 && echo one > /one
FROM {BASE} AS two
RUN sleep 1 && echo two > /two
FROM {BASE}
COPY --from=one /one /
COPY --from=two /two /
"""


def main() -> None:
    from tests.lib.images import busybox_image

    with tempfile.TemporaryDirectory(prefix="stages-bench-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        env = {"IMAGETOOL_STORE": str(work / "store")}
        busybox_image(work / "base", "latest")
        subprocess.run([*IMAGETOOL, "--insecure-policy", "copy", "-q", f"oci:{work / 'base'}:latest", BASE],
                       env={**os.environ, **env}, check=True)
        ctx = work / "ctx"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(TWO_STAGES)
        build = [*IMAGETOOL, "--insecure-policy", "build", "-q", "--pull", "never", "--no-cache", "-t", "stages"]
        parallel = run([*build, str(ctx)], env=env)
        sequential = run([*build, "--jobs", "1", str(ctx)], env=env)
        report([("two 1 s stages + final: default --jobs vs --jobs 1", parallel, sequential, "<= 0.65x")])


if __name__ == "__main__":
    main()
