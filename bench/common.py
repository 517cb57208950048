"""Shared benchmark helpers: timing and peak memory of whole commands, ratios, a report table."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from dataclasses import dataclass
from typing import Callable, Sequence

#: runs the command and reports its own wall time and peak RSS, so the probe's start-up is not counted
_PROBE = ("import resource, subprocess, sys, time; t = time.perf_counter(); p = subprocess.run(sys.argv[1:]); "
          "w = time.perf_counter() - t; r = resource.getrusage(resource.RUSAGE_CHILDREN); "
          "print(w, r.ru_utime + r.ru_stime, r.ru_maxrss, file=sys.stderr); sys.exit(p.returncode)")


@dataclass
class Measure:
    seconds: float
    cpu_seconds: float
    peak_rss_mib: float


def run(argv: Sequence[str], env: dict[str, str] | None = None, before: Callable[[], None] | None = None,
        repeat: int = 3) -> Measure:
    """Median wall time, median CPU time (user+sys) and the largest peak RSS over `repeat` runs."""
    walls, cpus, rss = [], [], []
    full_env = {**os.environ, **(env or {})}
    for _ in range(repeat):
        if before:
            before()
        proc = subprocess.run([sys.executable, "-c", _PROBE, *argv], env=full_env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stderr}")
        wall, cpu, peak = proc.stderr.strip().splitlines()[-1].split()
        walls.append(float(wall))
        cpus.append(float(cpu))
        rss.append(int(peak) / 1024)
    return Measure(statistics.median(walls), statistics.median(cpus), max(rss))


def report(rows: list[tuple[str, Measure, Measure | None, str]]) -> str:
    """Rows of (case, ours, theirs or None, target); returns the printed table."""
    lines = [f"{'case':44} {'ours s':>8} {'peer s':>8} {'ratio':>6} {'ours MiB':>9} {'peer MiB':>9}  target"]
    for case, ours, theirs, target in rows:
        ratio = f"{ours.seconds / theirs.seconds:.2f}" if theirs else "-"
        lines.append(f"{case:44} {ours.seconds:8.3f} {theirs.seconds if theirs else 0:8.3f} {ratio:>6} "
                     f"{ours.peak_rss_mib:9.1f} {theirs.peak_rss_mib if theirs else 0:9.1f}  {target}")
    text = "\n".join(lines)
    print(text)
    return text
