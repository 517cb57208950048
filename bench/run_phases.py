"""Where a container's start-up goes: the phases of each container an imagetool command runs, from strace.

    python bench/run_phases.py [--repeat 9] -- run --rm busybox true
    python bench/run_phases.py -- build -q --no-cache -t x DIR          (each RUN step is a container)

The command runs `--repeat` times under `strace -f --seccomp-bpf -tt`, tracing only process,
namespace and pipe calls (the filter keeps the rest of the process at full speed). For each
container the times are taken from the helper's unshare of its PID and network namespaces: when
slirp4netns was exec'd and the go word (G) sent once its interface was up, when PID 1 was in its
cgroup, when PID 1 exec'd the command, and when the command, the helper and (last container) the
whole command ended. The medians over all containers are printed; on a shared machine compare
runs made one after another, and read the load printed at the end.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import IMAGETOOL  # noqa: E402

CALLS = "execve,clone,clone3,unshare,read,write,exit_group"
PHASES = ["slirp4netns exec'd", "network up (G sent)", "PID 1 in its cgroup", "command exec'd",
          "command ended", "helper ended"]


def _ms(line: str) -> float:
    return float(line.split()[1].split(":")[2]) * 1000


def _first(lines: list[str], pattern: str, after: float) -> float:
    return next((_ms(line) for line in lines if re.search(pattern, line) and _ms(line) >= after), float("nan"))


def containers(lines: list[str]) -> list[dict[str, float]]:
    """The phases of each container in one command's trace, in ms after its helper's unshare."""
    main = lines[0].split()[0]
    found = []
    helpers = [line.split()[0] for line in lines if '"-S", "-I"' in line and "execve(" in line]
    for helper in helpers:
        own = [line for line in lines if line.startswith(helper + " ")]
        unshared = _first(own, r"unshare\(CLONE_NEWPID", 0)
        forked = next((line for line in own if re.search(r"clone.*\) = \d+$", line) and _ms(line) >= unshared), None)
        if forked is None:
            continue
        pid1 = forked.rsplit("= ", 1)[1]
        pid1_lines = [line for line in lines if line.startswith(pid1 + " ")]
        joins = [_ms(line) for line in own + pid1_lines
                 if re.search(r'write\(\d+, "\d+", \d+\)', line) and _ms(line) >= unshared]
        times = [_first(lines, r'execve\("[^"]*slirp4netns"', unshared),
                 _first([line for line in lines if line.startswith(main + " ")], r'write\(\d+, "G", 1\)', unshared),
                 max(joins) if joins else float("nan"),
                 _first(pid1_lines, r"execve\(.*\) = 0", unshared),
                 _first(pid1_lines, r"exit_group", unshared),
                 _first(own, r"exit_group", unshared)]
        found.append({name: t - unshared for name, t in zip(PHASES, times, strict=True)})
    if found:
        found[-1]["whole command ended"] = _ms(lines[-1]) - _ms(lines[0])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="imagetool's arguments, after --")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    rows: list[dict[str, float]] = []
    for _ in range(args.repeat):
        with tempfile.NamedTemporaryFile(prefix="run-phases-", suffix=".strace") as trace:
            subprocess.run(["strace", "-f", "--seccomp-bpf", "-tt", "-e", f"trace={CALLS}", "-e", "signal=none",
                            "-o", trace.name, *IMAGETOOL, *command], check=True, stdout=subprocess.DEVNULL)
            rows += containers(Path(trace.name).read_text().splitlines())
    if not rows:
        raise SystemExit("no container of the embedded runtime in the trace")
    print(f"{len(rows)} containers; medians in ms after the helper unshared the PID and network namespaces")
    for name in [*PHASES, "whole command ended"]:
        values = [r[name] for r in rows if name in r and r[name] == r[name]]
        if values:
            print(f"  {name:24} {statistics.median(values):8.1f}")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
