"""Shared benchmark helpers: timing and peak memory of whole commands, medians, ratios, the report tables.

Every bench script imports this module (after putting the repository on sys.path) and nothing of another
bench script.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

IMAGETOOL = [sys.executable, "-m", "imagetool"]
SKOPEO = ["skopeo", "--insecure-policy"]

#: runs the command and reports its own wall time and peak RSS, so the probe's start-up is not counted
_PROBE = ("import resource, subprocess, sys, time; t = time.perf_counter(); p = subprocess.run(sys.argv[1:]); "
          "w = time.perf_counter() - t; r = resource.getrusage(resource.RUSAGE_CHILDREN); "
          "print(w, r.ru_utime + r.ru_stime, r.ru_maxrss, file=sys.stderr); sys.exit(p.returncode)")


@dataclass
class Measure:
    seconds: float
    cpu_seconds: float
    peak_rss_mib: float


def run(argv: Sequence[str], env: dict[str, str] | None = None, before: Callable[[], object] | None = None,
        repeat: int = 3) -> Measure:
    """Median wall time, median CPU time (user+sys) and the largest peak RSS over `repeat` runs.

    Each run starts with no dirty page cache (os.sync after `before`): otherwise a command that
    fsyncs what it writes, as imagetool does, would also wait for the previous command's writeback.
    """
    walls, cpus, rss = [], [], []
    full_env = {**os.environ, **(env or {})}
    for _ in range(repeat):
        if before:
            before()
        os.sync()
        proc = subprocess.run([sys.executable, "-c", _PROBE, *argv], env=full_env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stderr}")
        wall, cpu, peak = proc.stderr.strip().splitlines()[-1].split()
        walls.append(float(wall))
        cpus.append(float(cpu))
        rss.append(int(peak) / 1024)
    return Measure(statistics.median(walls), statistics.median(cpus), max(rss))


def median(measures: Iterable[Measure]) -> Measure:
    """Median wall and CPU times and the largest peak RSS of several runs of one case."""
    ms = list(measures)
    return Measure(statistics.median(m.seconds for m in ms), statistics.median(m.cpu_seconds for m in ms),
                   max(m.peak_rss_mib for m in ms))


def varied(make_argv: Callable[[int], list[str]], env: dict[str, str] | None = None,
           before: Callable[[], object] | None = None, repeat: int = 3) -> Measure:
    """Like run(), but each repetition gets its own argv (a new repository name, say)."""
    return median(run(make_argv(i), env=env, before=before, repeat=1) for i in range(repeat))


def interleaved(cases: Sequence[tuple[Sequence[str], dict[str, str] | None, Callable[[], object] | None]],
                repeat: int) -> list[Measure]:
    """(argv, env, before) cases run once per round, `repeat` rounds: a change of the machine's load hits every
    case alike."""
    runs: list[list[Measure]] = [[] for _ in cases]
    for _ in range(repeat):
        for i, (argv, env, before) in enumerate(cases):
            runs[i].append(run(argv, env=env, before=before, repeat=1))
    return [median(ms) for ms in runs]


def compile_package() -> None:
    """Byte-compile the package, as an installed one is: $PYTHONDONTWRITEBYTECODE would hide that cost here."""
    package = Path(__file__).resolve().parent.parent / "imagetool"
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True)


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


def report_cpu(rows: list[tuple[str, Measure, Measure | None, str]], peer: str = "peer") -> None:
    """The CPU times (user+sys) of report()'s rows, and the load at the end: CPU time holds up under load, wall
    time does not."""
    for case, ours, theirs, _ in rows:
        line = f"CPU {case:44} ours {ours.cpu_seconds:.3f} s"
        if theirs is not None:
            line += f"  {peer} {theirs.cpu_seconds:.3f} s  ratio {ours.cpu_seconds / theirs.cpu_seconds:.2f}"
        print(line)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


def set_aside(path: Path, trash: Path) -> None:
    """Move a directory into `trash` (inside the bench's work directory, removed at its end) instead of
    deleting it between runs.

    ext4 passes over inodes freed in the last minutes when it allocates new ones, reading each one's
    inode-table entry to see when it was freed: with a registry's thousands of small files deleted before
    each run, the registry's kernel time grew run after run (the 200-tag sync's registries: 6.0 -> 10.2 s
    of CPU over six runs, flat at 6.0-7.6 s with the old files set aside), and the tool measured later paid more.
    """
    if path.exists():
        trash.mkdir(exist_ok=True)
        path.rename(trash / f"{path.name}-{len(os.listdir(trash))}")


def random_layout(layout: Path, mib: int, layers: int, name: str = "v1", gzip: bool = False) -> None:
    """An OCI layout of `layers` layers of random data (random data does not compress), uncompressed or gzip.

    Registry benches use gzip layers, as images in registries have: an uncompressed layer is one that
    skopeo compresses on its way to a registry or a layout and imagetool keeps as it is, so the two would
    not do the same work.
    """
    import tarfile

    from imagetool import gojson, media
    from imagetool.descriptor import Descriptor
    from imagetool.digest import digest_stream
    from imagetool.manifest import Manifest
    from imagetool.pgzip import ParallelGzipWriter
    from imagetool.store import refs
    from imagetool.store.layout import LayoutStore

    store = LayoutStore.create(layout)
    descs, diff_ids = [], []
    for i in range(layers):
        data, tar = layout / f"l{i}.bin", layout / f"l{i}.tar"
        with open(data, "wb") as f:
            left = (mib << 20) // layers
            while left:
                n = min(left, 8 << 20)
                f.write(os.urandom(n))
                left -= n
        with tarfile.open(tar, "w") as archive:
            archive.add(data, arcname=f"data/layer-{i}.bin")
        data.unlink()
        with open(tar, "rb") as f:
            diff_id = digest_stream(f)[0]
            f.seek(0)
            if gzip:
                gz = layout / f"l{i}.tar.gz"
                with open(gz, "wb") as out:
                    writer = ParallelGzipWriter(out)
                    while chunk := f.read(1 << 20):
                        writer.write(chunk)
                    writer.close()
                with open(gz, "rb") as g:
                    digest, size = store.put_blob(g)
                gz.unlink()
            else:
                digest, size = store.put_blob(f)
        tar.unlink()
        descs.append(Descriptor(media.OCI_LAYER_GZIP if gzip else media.OCI_LAYER, digest, size))
        diff_ids.append(str(diff_id))
    cfg = gojson.dumps({"architecture": "amd64", "os": "linux", "config": {},
                        "rootfs": {"type": "layers", "diff_ids": diff_ids}})
    cfg_desc = Descriptor(media.OCI_CONFIG, store.put_bytes(cfg), len(cfg))
    manifest = Manifest.build(media.OCI_MANIFEST, cfg_desc, descs)
    refs.set_name(store, name, Descriptor(media.OCI_MANIFEST, store.put_bytes(manifest.raw), len(manifest.raw)))
