"""Shared benchmark helpers: timing and peak memory of whole commands, ratios, a report table."""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable, Sequence

_PROBE = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:]); "
          "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(p.returncode)")


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
        start_ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", _PROBE, *argv], env=full_env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
        walls.append(time.perf_counter() - t0)
        end_ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stderr}")
        cpus.append((end_ru.ru_utime - start_ru.ru_utime) + (end_ru.ru_stime - start_ru.ru_stime))
        rss.append(int(proc.stderr.strip().splitlines()[-1]) / 1024)
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
