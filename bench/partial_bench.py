"""Partial pulls of zstd:chunked images (issue 21): bytes on the wire and time, against full pulls.

    python bench/partial_bench.py [--layers 5] [--files 100] [--repeat 3] [--link-mbit 1000] [--link-rtt-ms 0]

The issue's image: two versions of an image of `--layers` layers, each of `--files` files of 1 MiB (5 x
100 MiB, incompressible), v2 changing one file in the middle layer, pushed as zstd:chunked to a real
registry behind the recording proxy of the tests (tests/lib/faultproxy.py), which counts the response
bytes of every request. Cases:

  partial pull of v2 into a local store holding v1 (what crossed the wire, and the time)
  full pull of v2 (IMAGETOOL_PARTIAL_PULLS=0) into an empty store, and the same plus the unpack into
      snapshots (what the partial pull leaves, so the like-for-like figure)
  skopeo copy of v2 to an empty oci: layout (download only)
  the same-store comparisons: a full pull of v2 into a store holding v1 pulled the ordinary way (only the
      changed layer moves, whole), the same plus the unpack (v1 unpacked before), and skopeo copy of v2
      into an oci: layout holding v1 (likewise)

--link-mbit N puts a link of N Mbit/s each way (bench/linkproxy.py: a TCP forwarder on 127.0.0.1, one rate
shared by every connection, --link-rtt-ms of round-trip delay) between the commands and the recording proxy:
on loopback a 100 MiB download takes a tenth of a second, and the ratios are bound by local hashing and the
fixed cost of a command (start-up, the registry round trips). The set-up (pushes, the v1 pulls before a
case) goes at loopback speed; only the measured commands cross the link. --link-mib N is the same link
given in MiB/s. The imagetool commands get a private user cache ($XDG_CACHE_HOME under the bench's temp
dir, warmed by the set-up), so the figures do not depend on what the developer's cache has grown to.
With --layers 1 the image is the one changed layer and both comparisons move the same bytes.

The cases run in rounds, one run of each a round (--repeat rounds), and each row gives the medians: on a
shared machine a change of load then falls on every case alike. The CPU times (user+sys) are printed too:
they hold up under load, wall times do not.

Targets: the partial pull moves <= 5% of v2's layer bytes and takes <= 0.3x the full pull's time
and <= 0.3x skopeo copy's.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import IMAGETOOL, SKOPEO, Measure, compile_package, median, report, report_cpu, run  # noqa: E402
from bench.linkproxy import LinkProxy  # noqa: E402
from tests.lib.faultproxy import FaultProxy  # noqa: E402
from tests.lib.images import Layer, tar_bytes, write_image  # noqa: E402
from tests.lib.registry import start_registry, stop_registry  # noqa: E402

from imagetool.digest import Digest  # noqa: E402

MIB = 1 << 20


def layer_files(n: int, layer: int, changed: bool) -> dict[str, bytes | str | None]:
    """Layer `layer`'s files; `changed`: v2's version of it, one file in the middle rewritten."""
    rng = random.Random(21 + layer)
    top = f"layer{layer}/"
    files: dict[str, bytes | str | None] = {top: None}
    for i in range(n):
        files[f"{top}part{i:03d}.bin"] = rng.randbytes(MIB)
    if changed:
        files[f"{top}part{n // 2:03d}.bin"] = random.Random(2121).randbytes(MIB)
    return files


#: a full pull and then the snapshot a run would unpack: what a partial pull leaves, made the ordinary way
UNPACK = """
import json, subprocess, sys
from imagetool.descriptor import Descriptor
from imagetool.digest import Digest
from imagetool.store.layout import LayoutStore
from imagetool.store.snapshots import SnapshotStore
tool = [sys.executable, "-m", "imagetool"]
subprocess.run(tool + ["copy", "-q", "--src-tls-verify=false", sys.argv[2], "localhost/bench:v2"], check=True)
m = json.loads(subprocess.run(tool + ["inspect", "--raw", "localhost/bench:v2"], capture_output=True).stdout)
c = json.loads(subprocess.run(tool + ["inspect", "--config", "localhost/bench:v2"], capture_output=True).stdout)
SnapshotStore(LayoutStore.open(sys.argv[1])).prepare(
    [(Descriptor.from_dict(d), Digest.parse(i)) for d, i in zip(m["layers"], c["rootfs"]["diff_ids"])])
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--files", type=int, default=100, help="1 MiB files per layer")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--link-mbit", type=float, default=0,
                        help="Put a link of this many Mbit/s (each way) before the registry (0: loopback speed).")
    parser.add_argument("--link-mib", type=float, default=0, help="The same link in MiB/s.")
    parser.add_argument("--link-rtt-ms", type=float, default=0, help="The link's round-trip delay.")
    args = parser.parse_args()
    mbit = args.link_mbit or args.link_mib * MIB * 8 / 1e6
    compile_package()
    root = Path(tempfile.mkdtemp(prefix="imagetool-bench-", dir=os.environ.get("BENCH_TMP", "/var/tmp")))
    os.environ["XDG_CACHE_HOME"] = str(root / "user-cache")
    registry = start_registry(root, "bench")
    proxy = FaultProxy(registry.host)
    link = LinkProxy(proxy.host, mbit, args.link_rtt_ms) if mbit else None
    front = link or proxy  # what the commands talk to

    def setup(fn: Callable[[], object]) -> Callable[[], None]:
        """fn at loopback speed: a case's set-up is not what is measured."""
        def wrapped() -> None:
            if link:
                link.enabled = False
            try:
                fn()
            finally:
                if link:
                    link.enabled = True
        return wrapped
    try:
        layers: dict[int, dict[str, object]] = {}
        changed = args.layers // 2
        for v in (1, 2):
            tars = [tar_bytes(layer_files(args.files, i, v == 2 and i == changed), mtime=1_700_000_000)
                    for i in range(args.layers)]
            write_image(root / f"v{v}", "v", [Layer(t, Digest.of(t), "application/vnd.oci.image.layer.v1.tar")
                                              for t in tars])
            del tars
            ref = f"{proxy.ref('bench')}:v{v}"
            run(IMAGETOOL + ["copy", "-q", "--dest-tls-verify=false", "--dest-compress-format", "zstd:chunked",
                             f"oci:{root}/v{v}:v", ref], repeat=1)
            raw = subprocess.run(IMAGETOOL + ["inspect", "--raw", "--tls-verify=false", ref], check=True,
                                 capture_output=True, text=True).stdout
            layers[v] = json.loads(raw)["layers"][changed]
        v2 = f"{front.ref('bench')}:v2"
        layer_size = int(layers[2]["size"])  # type: ignore[call-overload]
        pull = IMAGETOOL + ["copy", "-q", "--src-tls-verify=false"]
        store = root / "store"
        env = {"IMAGETOOL_STORE": str(store)}
        sent: list[int] = []

        @setup
        def with_v1() -> None:
            shutil.rmtree(store, ignore_errors=True)
            subprocess.run(pull + [f"{front.ref('bench')}:v1", "localhost/bench:v1"], check=True,
                           env={**os.environ, **env})
            proxy.records.clear()

        def fresh() -> None:
            shutil.rmtree(store, ignore_errors=True)
            proxy.records.clear()
        script = root / "pull_and_unpack.py"
        script.write_text(UNPACK)
        whole = {**env, "IMAGETOOL_PARTIAL_PULLS": "0"}

        def with_v1_whole(unpacked: bool) -> Callable[[], None]:
            @setup
            def before() -> None:  # v1 pulled the ordinary way: its blobs are in the store (and its snapshots)
                shutil.rmtree(store, ignore_errors=True)
                v1 = f"{front.ref('bench')}:v1"
                argv = [sys.executable, str(script), str(store), v1] if unpacked else pull + [v1, "localhost/b:v1"]
                subprocess.run(argv, check=True, env={**os.environ, **whole})
            return before

        @setup
        def skopeo_v1() -> None:
            shutil.rmtree(root / "sk", ignore_errors=True)
            subprocess.run(SKOPEO + ["copy", "-q", "--src-tls-verify=false", f"{front.ref('bench')}:v1",
                                     f"oci:{root}/sk:v1"], check=True)

        full_bytes: list[int] = []
        # name -> (argv, env, before, after): one run of each case a round, so a change of the machine's load
        # (other work on a shared machine) falls on every case alike
        cases: dict[str, tuple[list[str], dict[str, str], Callable[[], None], Callable[[], None] | None]] = {
            "partial": (pull + [v2, "localhost/bench:v2"], env, with_v1,
                        lambda: sent.append(proxy.response_bytes(path=str(layers[2]["digest"])))),
            "full": (pull + [v2, "localhost/bench:v2"], whole, fresh,
                     lambda: full_bytes.append(proxy.response_bytes(path=str(layers[2]["digest"])))),
            "full + unpack": ([sys.executable, str(script), str(store), v2], whole, fresh, None),
            "skopeo": (SKOPEO + ["copy", "-q", "--src-tls-verify=false", v2, f"oci:{root}/sk:v2"], {},
                       lambda: shutil.rmtree(root / "sk", ignore_errors=True), None),
        }
        if args.layers > 1:
            cases["full, v1 in store"] = (pull + [v2, "localhost/bench:v2"], whole, with_v1_whole(False), None)
            cases["full + unpack, v1 in store"] = ([sys.executable, str(script), str(store), v2], whole,
                                                   with_v1_whole(True), None)
            cases["skopeo, v1 in oci:"] = (SKOPEO + ["copy", "-q", "--src-tls-verify=false", v2,
                                                      f"oci:{root}/sk:v2"], {}, skopeo_v1, None)
        runs: dict[str, list[Measure]] = {name: [] for name in cases}
        loads: list[str] = []
        for _ in range(args.repeat):
            loads.append(f"{os.getloadavg()[0]:.2f}")
            for name, (argv, case_env, before, after) in cases.items():
                runs[name].append(run(argv, env=case_env, before=before, repeat=1))
                if after:
                    after()
        loads.append(f"{os.getloadavg()[0]:.2f}")
        got = {name: median(ms) for name, ms in runs.items()}
        partial, full, full_unpack, skopeo = got["partial"], got["full"], got["full + unpack"], got["skopeo"]
        rows_same: list[tuple[str, Measure, Measure | None, str]] = []
        if args.layers > 1:
            rows_same = [("  vs full pull v2, v1 pulled whole before", partial, got["full, v1 in store"],
                          "(reported)"),
                         ("  vs full pull + unpack v2, v1 so before", partial, got["full + unpack, v1 in store"],
                          "(reported)"),
                         ("  vs skopeo copy v2 -> oci: holding v1", partial, got["skopeo, v1 in oci:"],
                          "(reported)")]
        # what no partial pull can go below: a command's fixed cost, and hashing the rebuilt tar (the diff_id check)
        start = run(IMAGETOOL + ["--version"], repeat=args.repeat)
        (root / "v2.tar").write_bytes(tar_bytes(layer_files(args.files, changed, True), mtime=1_700_000_000))
        hashed = run([sys.executable, "-c", "import hashlib, sys; hashlib.file_digest(open(sys.argv[1], 'rb'), "
                      "'sha256')", str(root / "v2.tar")], repeat=args.repeat)
        rows: list[tuple[str, Measure, Measure | None, str]] = [
            ("partial pull v2 (v1 in store) vs full pull", partial, full, "<= 0.30"),
            ("partial pull v2 vs full pull + unpack", partial, full_unpack, "<= 0.30"),
            ("partial pull v2 vs skopeo copy v2 -> oci:", partial, skopeo, "<= 0.30"),
            *rows_same,
        ]
        print(f"{args.layers} layers of {args.files} MiB, one file changed in layer {changed}; "
              f"link: {f'{mbit:g} Mbit/s each way, {args.link_rtt_ms:g} ms RTT' if mbit else 'loopback'}")
        report(rows)
        report_cpu(rows)
        print("load average (1 min) at the start of each round and at the end: " + " ".join(loads))
        print("wall times of each case, round by round: " + "; ".join(
            f"{name} {' '.join(f'{m.seconds:.3f}' for m in ms)}" for name, ms in runs.items()))
        print(f"floors: imagetool --version {start.seconds:.3f} s; a python process hashing the "
              f"{args.files} MiB changed layer's tar {hashed.seconds:.3f} s")
        worst = max(sent)
        print(f"\nv2's changed layer: {layer_size} bytes ({layer_size / MIB:.1f} MiB); "
              f"the full pull moved {max(full_bytes)} bytes of it")
        print(f"partial pull moved {worst} bytes at most over {len(sent)} runs: "
              f"{100 * worst / layer_size:.2f}% of the layer (target <= 5%)")
        ok = worst <= 0.05 * layer_size and all(partial.seconds <= 0.3 * m.seconds for m in (full, skopeo))
        print("targets met" if ok else "TARGETS MISSED")
    finally:
        if link:
            link.close()
        proxy.close()
        stop_registry(registry)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
