"""Independent stages run at once (--jobs), unused ones are skipped, and a failure cancels the rest.

Real builds through the CLI on the busybox base the build tests make. That stages overlap is
proved by the stages themselves: each writes /proc/uptime (one clock for every container)
before and after its sleep, the final stage copies those files out, and the intervals are
compared; no wall-clock threshold that a loaded machine could break.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from imagetool.build.dockerfile import parse
from imagetool.build.schedule import StageLines, dependencies, may_overlap, run_concurrently, stages_to_build
from imagetool.build.stages import plan
from imagetool.errors import BuildError
from imagetool.runtime import cancel
from imagetool.store import refs
from imagetool.store.layout import LayoutStore
from tests.build.test_run_steps import BASE, base_image
from tests.lib.cli import imagetool, one_line_error
from tests.lib.images import busybox_image

#: a stage that records when its RUN step started and ended, sleeping in between
TIMED = ("FROM {base} AS {name}\n"
         "RUN cat /proc/uptime > /start && echo {name}-running && sleep 2 && cat /proc/uptime > /end\n")
FINAL = ("FROM scratch\n"
         "COPY --from=a /start /a.start\nCOPY --from=a /end /a.end\n"
         "COPY --from=b /start /b.start\nCOPY --from=b /end /b.end\n")


def context(tmp_path: Path, dockerfile: str, name: str = "ctx") -> Path:
    ctx = tmp_path / name
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile)
    return ctx


def intervals(out: Path) -> dict[str, tuple[float, float]]:
    """Each timed stage's (start, end) on the host's boot clock, from the files the build wrote out."""
    def clock(name: str) -> float:
        return float((out / name).read_text().split()[0])
    return {s: (clock(f"{s}.start"), clock(f"{s}.end")) for s in ("a", "b")}


def overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return min(a[1], b[1]) - max(a[0], b[0])


def sleepers(marker: str) -> list[int]:
    """Processes whose command line is `sleep MARKER` (a container left running)."""
    found = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read().split(b"\0")[:2] == [b"sleep", marker.encode()]:
                    found.append(int(pid))
        except (OSError, ValueError):
            continue
    return found


# -- the schedule, without containers


def test_dependencies_overlap_and_unused_stages() -> None:
    p = plan(parse("FROM scratch AS a\nFROM scratch AS b\nFROM a AS c\nCOPY --from=b / /\n"
                   "FROM scratch AS unused\nFROM c\nRUN --mount=type=bind,from=a,target=/m true\n"))
    assert stages_to_build(p) == (0, 1, 2, 4)
    assert stages_to_build(p, skip_unused=False) == (0, 1, 2, 3, 4)
    assert dependencies(p, p.needed) == {0: (), 1: (), 2: (0, 1), 4: (0, 2)}
    assert may_overlap(dependencies(p, p.needed))             # a and b
    chain = plan(parse("FROM scratch AS a\nFROM a AS b\nFROM scratch\nCOPY --from=b / /\n"))
    assert not may_overlap(dependencies(chain, chain.needed))  # each needs the one before
    middle = plan(parse("FROM scratch AS a\nFROM scratch AS b\nFROM a AS mid\nFROM scratch\nCOPY --from=b / /\n"),
                  target="mid")
    assert stages_to_build(middle) == (0, 2) and stages_to_build(middle, skip_unused=False) == (0, 1, 2)


def test_run_concurrently_respects_dependencies_and_jobs() -> None:
    deps = {0: (), 1: (), 2: (), 3: (0, 1), 4: (3, 2)}
    lock = threading.Lock()
    running: set[int] = set()
    most = 0
    finished: list[int] = []

    def run(n: int) -> None:
        nonlocal most
        with lock:
            assert all(d in finished for d in deps[n])
            running.add(n)
            most = max(most, len(running))
        time.sleep(0.2)
        with lock:
            running.discard(n)
            finished.append(n)

    run_concurrently(deps, 2, run)
    assert sorted(finished) == [0, 1, 2, 3, 4] and finished[-1] == 4 and most == 2


def test_a_failure_cancels_the_others_and_is_raised_once_all_ended() -> None:
    ended: list[str] = []
    killed = threading.Event()

    def run(n: int) -> None:
        if n == 0:
            time.sleep(0.2)
            raise BuildError("stage 0 failed")
        with cancel.killing(killed.set):  # as the runtime wraps a container's run
            killed.wait(30)
        ended.append(f"{n} ended")
        cancel.check()  # the next step of a cancelled stage does not start
        ended.append(f"{n} went on")

    started = time.monotonic()
    with pytest.raises(BuildError, match="stage 0 failed"):
        run_concurrently({0: (), 1: (), 2: (1,)}, 4, run)
    assert time.monotonic() - started < 10
    assert ended == ["1 ended"]  # stage 2 (after 1) never started


def test_stage_lines_prefix_each_thread_with_its_stage() -> None:
    seen: list[str] = []
    lines = StageLines(seen.append)

    def stage(name: str) -> None:
        with lines.stage(name):
            lines(f"from {name}")

    threads = [threading.Thread(target=stage, args=(n,)) for n in ("build", "1")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines("COMMIT")
    assert sorted(seen) == ["COMMIT", "[1] from 1", "[build] from build"]


# -- real builds


def test_independent_stages_overlap_with_jobs_and_not_with_one(tmp_path: Path, local_store: Path) -> None:
    base_image(tmp_path)
    ctx = context(tmp_path, TIMED.format(base=BASE, name="a") + TIMED.format(base=BASE, name="b") + FINAL)
    imagetool("build", "--no-cache", "--jobs", "2", "-o", str(tmp_path / "par"), "-t", "par", str(ctx))
    par = intervals(tmp_path / "par")
    # each slept 2 s; at once, most of those seconds are shared (a loaded machine may start one late)
    assert overlap(par["a"], par["b"]) > 0.5, par
    imagetool("build", "--no-cache", "--jobs", "1", "-o", str(tmp_path / "seq"), "-t", "seq", str(ctx))
    seq = intervals(tmp_path / "seq")
    assert overlap(seq["a"], seq["b"]) <= 0 and seq["a"][1] <= seq["b"][0], seq  # one after the other, in order


def test_unused_stage_is_skipped_unless_told_otherwise(tmp_path: Path, local_store: Path) -> None:
    base_image(tmp_path)
    ctx = context(tmp_path, f"FROM {BASE} AS unused\nRUN false\n"
                            f"FROM {BASE} AS used\nRUN echo used > /used\n"
                            "FROM scratch\nCOPY --from=used /used /\n")
    out = imagetool("build", "-t", "skipping", str(ctx)).stdout
    assert "RUN false" not in out and "FROM localhost/busybox:base AS unused" not in out
    assert "[1/2] STEP 2/2: RUN echo used > /used" in out  # the two stages built, one after the other
    before = (local_store / "index.json").read_bytes()
    for flags in (["--skip-unused-stages=false"], ["--no-skip-unused-stages", "--jobs", "1"]):
        line = one_line_error(imagetool("build", *flags, "-t", "all", str(ctx), check=False))
        assert line.endswith("Dockerfile:2: RUN false: the command exited with status 1"), line
    assert (local_store / "index.json").read_bytes() == before


@pytest.mark.parametrize("runtime", ["embedded", "runc"])
def test_failing_stage_cancels_a_running_one(runtime: str, tmp_path: Path, local_store: Path) -> None:
    base_image(tmp_path)
    marker = "347" if runtime == "embedded" else "348"
    ctx = context(tmp_path, f"FROM {BASE} AS slow\nRUN echo slow-started && sleep {marker}\n"
                            f"FROM {BASE} AS bad\nRUN sleep 1 && echo failing && exit 3\n"
                            f"FROM {BASE}\nCOPY --from=slow /etc/passwd /a\nCOPY --from=bad /etc/passwd /b\n")
    temp = tmp_path / "temp"
    temp.mkdir()
    before = (local_store / "index.json").read_bytes()
    started = time.monotonic()
    proc = imagetool("--tmpdir", str(temp), "build", "--runtime", runtime, "--jobs", "2", "-t", "failed", str(ctx),
                     check=False)
    took = time.monotonic() - started
    line = one_line_error(proc)
    assert proc.returncode == 1
    assert line.endswith("Dockerfile:4: RUN sleep 1 && echo failing && exit 3: the command exited with status 3")
    assert "[slow] slow-started" in proc.stdout and "[bad] failing" in proc.stdout
    assert took < 120, took  # the sleep (minutes) was cut short, not waited for
    assert sleepers(marker) == []
    assert os.listdir(temp) == []  # upperdirs, bundles, scratch: all gone
    assert (local_store / "index.json").read_bytes() == before
    if runtime == "runc":
        listed = imagetool_runc_list()
        assert not [c for c in listed if c.startswith("imagetool-")], listed


def imagetool_runc_list() -> list[str]:
    """runc's containers that are not stopped (imagetool names its own imagetool-*)."""
    import subprocess

    out = subprocess.run(["runc", "list", "-q"], capture_output=True, text=True, check=True).stdout
    return [c for c in out.split() if c]


def test_parallel_output_is_prefixed_and_sequential_output_unchanged(tmp_path: Path, local_store: Path) -> None:
    base_image(tmp_path)
    ctx = context(tmp_path, f"FROM {BASE} AS a\nRUN echo hello-from-a\n"
                            f"FROM {BASE}\nRUN echo hello-from-1\n"
                            "FROM scratch\nCOPY --from=a /etc/group /a\nCOPY --from=1 /etc/group /b\n")
    lines = imagetool("build", "--no-cache", "--jobs", "2", "-t", "pre", str(ctx)).stdout.splitlines()
    for stage, text in (("a", "hello-from-a"), ("1", "hello-from-1")):
        assert f"[{stage}] {text}" in lines and text not in lines
    assert f"[a] STEP 1/2: FROM {BASE} AS a" in lines and "[1] STEP 2/2: RUN echo hello-from-1" in lines
    assert "[2] STEP 3/3: COPY --from=1 /etc/group /b" in lines
    assert lines[-3:-1] == ["COMMIT localhost/pre:latest", lines[-2]] and lines[-1] == \
        "Successfully tagged localhost/pre:latest"
    out = imagetool("build", "--no-cache", "--jobs", "1", "-t", "seq", str(ctx)).stdout.splitlines()
    assert out[:6] == [f"[1/3] STEP 1/2: FROM {BASE} AS a", "[1/3] STEP 2/2: RUN echo hello-from-a", "hello-from-a",
                       f"[2/3] STEP 1/2: FROM {BASE}", "[2/3] STEP 2/2: RUN echo hello-from-1", "hello-from-1"]
    assert not any(line.startswith(("[a]", "[1]", "[2]")) for line in out)


def test_same_image_whatever_the_jobs(tmp_path: Path, local_store: Path) -> None:
    """Stages built at once (two of them making the same layers, side by side in one store) give the
    image --jobs 1 gives, byte for byte."""
    base_image(tmp_path)
    same = "RUN mkdir -p /out && echo same > /out/same && sleep 1\n"
    ctx = context(tmp_path, f"FROM {BASE} AS x\n{same}FROM {BASE} AS y\n{same}"
                            f"FROM {BASE} AS z\nRUN echo z > /z && ln -s z /zl\nWORKDIR /made\n"
                            f"FROM {BASE}\nCOPY --from=x /out /x\nCOPY --from=y /out /y\n"
                            "COPY --from=z /z /zl /made /z/\n"
                            "RUN find /x /y /z | sort > /listing\n")
    digests = []
    # the last build finds every step in the cache, the stages looking it up (and unpacking) at once
    for jobs, cache in (("1", "--no-cache"), ("4", "--no-cache"), ("4", "--no-cache"), ("4", "--layers")):
        iid = tmp_path / f"iid-{len(digests)}"
        out = imagetool("build", cache, "--timestamp", "1700000000", "--jobs", jobs, "--iidfile", str(iid),
                        "-t", f"j{len(digests)}", str(ctx)).stdout
        layout = LayoutStore.open(local_store)
        digests.append((iid.read_text(), refs.resolve(layout, f"localhost/j{len(digests)}:latest").digest))
    assert out.count("--> Using cache") == 8 and "[x] --> Using cache" in out
    assert digests[0] == digests[1] == digests[2] == digests[3]


def test_target_builds_only_what_it_needs(tmp_path: Path, local_store: Path) -> None:
    base_image(tmp_path)
    ctx = context(tmp_path, f"FROM {BASE} AS base\nRUN echo base > /base\n"
                            f"FROM {BASE} AS other\nRUN false\n"
                            "FROM base AS mid\nRUN echo mid > /mid\n"
                            "FROM mid AS last\nRUN false\n")
    out = imagetool("build", "--target", "mid", "-o", str(tmp_path / "mid"), "-t", "mid", str(ctx)).stdout
    steps = [line for line in out.splitlines() if "STEP" in line]
    assert steps == [f"[1/2] STEP 1/2: FROM {BASE} AS base", "[1/2] STEP 2/2: RUN echo base > /base",
                     "[2/2] STEP 1/2: FROM base AS mid", "[2/2] STEP 2/2: RUN echo mid > /mid"]
    assert (tmp_path / "mid" / "mid").read_text() == "mid\n" and (tmp_path / "mid" / "base").read_text() == "base\n"
    # every stage up to the target: `other` runs (and fails), `last` still does not
    line = one_line_error(imagetool("build", "--target", "mid", "--skip-unused-stages=false", str(ctx), check=False))
    assert line.endswith("Dockerfile:4: RUN false: the command exited with status 1"), line


def test_parallel_build_rootless(rootless_user) -> None:  # type: ignore[no-untyped-def]
    """Rootless, stages at once on a fresh store: both unpack the base, map ids and commit side by side."""
    user = rootless_user
    work = user.mkdtemp()
    layout = work / "base"
    busybox_image(layout, "latest")
    ctx = context(work, TIMED.format(base=BASE, name="a") + TIMED.format(base=BASE, name="b") +
                  FINAL.replace("FROM scratch", f"FROM {BASE}") + "RUN chown nobody /a.start && stat -c %U /a.start\n")
    user.give(work)
    env = {"IMAGETOOL_STORE": str(work / "store")}
    user.imagetool("copy", f"oci:{layout}:latest", BASE, env=env)
    out = user.imagetool("build", "--jobs", "2", "-o", str(work / "out"), "-t", "rl", str(ctx), env=env).stdout
    assert "[a] a-running" in out and "[b] b-running" in out and "[2] nobody" in out
    assert overlap(*intervals(work / "out").values()) > 0.5


@pytest.mark.parametrize("runtime", ["embedded", "runc"])
def test_failing_stage_cancels_a_running_one_rootless(runtime: str, rootless_user) -> None:  # type: ignore[no-untyped-def]
    user = rootless_user
    work = user.mkdtemp()
    layout = work / "base"
    busybox_image(layout, "latest")
    marker = "357" if runtime == "embedded" else "358"
    ctx = context(work, f"FROM {BASE} AS slow\nRUN sleep {marker}\n"
                        f"FROM {BASE} AS bad\nRUN sleep 1 && false\n"
                        f"FROM {BASE}\nCOPY --from=slow /etc/passwd /a\nCOPY --from=bad /etc/passwd /b\n")
    temp = work / "temp"
    temp.mkdir()
    user.give(work)
    env = {"IMAGETOOL_STORE": str(work / "store")}
    user.imagetool("copy", f"oci:{layout}:latest", BASE, env=env)
    proc = user.imagetool("--tmpdir", str(temp), "build", "--runtime", runtime, "--jobs", "2", "-t", "failed",
                          str(ctx), env=env, check=False)
    assert one_line_error(proc).endswith("Dockerfile:4: RUN sleep 1 && false: the command exited with status 1")
    assert sleepers(marker) == []
    assert os.listdir(temp) == []
    assert "localhost/failed" not in user.imagetool("images", env=env).stdout
