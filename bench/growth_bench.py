"""How push and pull cost grows with image size: wall time and peak RSS at several sizes.

    python bench/growth_bench.py [--sizes 512,1024,2048,5120] [--layer-mib 100] [--repeat 1]

Each size is an image of random 100 MiB gzip layers (a 5 GiB image has 50), pushed from an oci:
layout to a fresh loopback registry and pulled back into a fresh oci: layout, by imagetool and
by skopeo in the same run. Prints a table, writes bench/results/growth.json, and draws
bench/results/growth.png (time and peak RSS against size) with matplotlib: the `bench` extra of
pyproject.toml, which the bench installs into its own interpreter when it is missing (--no-plot
skips both). Needs about three times the largest size in free space under $BENCH_TMP (default
/var/tmp).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    IMAGETOOL,
    SKOPEO,
    Measure,
    compile_package,
    random_layout,
    report,
    report_cpu,
    run,
)

FLAGS = ["--src-tls-verify=false", "--dest-tls-verify=false"]
RESULTS = Path(__file__).resolve().parent / "results"


def ensure_matplotlib() -> bool:
    """Install the `bench` extra's requirements (matplotlib) with pip when they are missing: a bench-only
    dependency, never one of imagetool's."""
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        pass
    import subprocess
    import tomllib

    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    wanted = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]["bench"]
    print(f"installing the bench extra: {' '.join(wanted)}", flush=True)
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", *wanted])
    return done.returncode == 0


def plot(results: dict[str, dict[int, Measure]], out: Path) -> bool:
    """time and RSS against size, one line per (tool, operation); False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (ax_t, ax_c, ax_m) = plt.subplots(1, 3, figsize=(15, 4.2))
    for label, by_size in sorted(results.items()):
        sizes = sorted(by_size)
        gib = [s / 1024 for s in sizes]
        style = "-" if label.startswith("imagetool") else "--"
        ax_t.plot(gib, [by_size[s].seconds for s in sizes], style, marker="o", label=label)
        ax_c.plot(gib, [by_size[s].cpu_seconds for s in sizes], style, marker="o", label=label)
        ax_m.plot(gib, [by_size[s].peak_rss_mib for s in sizes], style, marker="o", label=label)
    ax_t.set(xlabel="image size (GiB)", ylabel="wall time (s)", title="time")
    ax_c.set(xlabel="image size (GiB)", ylabel="CPU time, user+sys (s)", title="CPU time (steadier under load)")
    ax_m.set(xlabel="image size (GiB)", ylabel="peak RSS (MiB)", title="peak RSS")
    ax_m.set_ylim(bottom=0)
    for ax in (ax_t, ax_c, ax_m):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return True


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="512,1024,2048,5120", help="image sizes in MiB")
    parser.add_argument("--layer-mib", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--no-skopeo", action="store_true")
    parser.add_argument("--no-plot", action="store_true", help="neither install matplotlib nor draw")
    parser.add_argument("--plot-only", action="store_true", help="draw growth.json again, measure nothing")
    args = parser.parse_args()
    can_plot = not args.no_plot and ensure_matplotlib()
    if args.plot_only:  # draw again from the last run's numbers
        saved = json.loads((RESULTS / "growth.json").read_text())
        ok = can_plot and plot({label: {int(k): Measure(**v) for k, v in by.items()} for label, by in saved.items()},
                               RESULTS / "growth.png")
        print(f"plot: {RESULTS / 'growth.png'}" if ok else "no plot (matplotlib missing, or --no-plot)")
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    from tests.lib.registry import start_registry, stop_registry

    compile_package()
    results: dict[str, dict[int, Measure]] = {}
    rows: list[tuple[str, Measure, Measure | None, str]] = []
    with tempfile.TemporaryDirectory(prefix="growth-bench-", dir=os.environ.get("BENCH_TMP", "/var/tmp")) as tmp:
        work = Path(tmp)
        reg = start_registry(work / "reg", "g")
        env = {"XDG_CACHE_HOME": str(work / "cache")}
        try:
            for mib in sizes:
                src = work / "src"
                random_layout(src, mib, max(1, mib // args.layer_mib), gzip=True)

                def wipe() -> None:
                    shutil.rmtree(reg.root, ignore_errors=True)
                    shutil.rmtree(work / "cache", ignore_errors=True)

                tools = [("imagetool", IMAGETOOL)] + ([] if args.no_skopeo else [("skopeo", SKOPEO)])
                measured: dict[str, Measure] = {}
                for tool, argv in tools:
                    measured[f"{tool} push"] = run([*argv, "copy", "-q", *FLAGS, f"oci:{src}:v1",
                                                    f"docker://{reg.host}/g/img:v1"], env=env, before=wipe,
                                                   repeat=args.repeat)
                # the image stays in the registry (pushed last) for the pulls
                for tool, argv in tools:
                    pulled = work / "pulled"
                    measured[f"{tool} pull"] = run([*argv, "copy", "-q", *FLAGS, f"docker://{reg.host}/g/img:v1",
                                                    f"oci:{pulled}:v1"], env=env,
                                                   before=lambda p=pulled: shutil.rmtree(p, ignore_errors=True),
                                                   repeat=args.repeat)
                shutil.rmtree(work / "pulled", ignore_errors=True)
                shutil.rmtree(src, ignore_errors=True)
                for label, m in measured.items():
                    results.setdefault(label, {})[mib] = m
                for op in ("push", "pull"):
                    rows.append((f"{op} {mib} MiB ({max(1, mib // args.layer_mib)} layers)",
                                 measured[f"imagetool {op}"], measured.get(f"skopeo {op}"), "linear time, flat RSS"))
        finally:
            stop_registry(reg)
    report(rows)
    report_cpu(rows, "skopeo")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "growth.json").write_text(json.dumps(
        {label: {str(k): vars(v) for k, v in by.items()} for label, by in results.items()}, indent=1))
    if can_plot and plot(results, RESULTS / "growth.png"):
        print(f"plot: {RESULTS / 'growth.png'}")
    else:
        print("no plot (matplotlib missing, or --no-plot)")


if __name__ == "__main__":
    main()
