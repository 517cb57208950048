"""Mirroring benchmarks: `sync` and `copy --all` between loopback registries, against skopeo in the same run.

    python bench/sync_bench.py [--images 24] [--tags 200] [--platforms 4] [--repeat 3] [--requests]

Cases: a repository of `--images` distinct small images (two layers of 20 KB each), a repository
of `--tags` tags, and `copy --all` of a `--platforms`-platform index of images of two 5 MiB layers
(distinct, then with the first layer the same in every platform); each into a fresh destination
registry every run. skopeo copies sync's images (and an index's platforms) one after another.

With --requests, each case runs once per tool instead, and the HTTP requests each registry's access log
shows for it are counted by kind (ping, tags, manifest GET/HEAD/PUT, blob GET/HEAD, upload
POST/PATCH/PUT, mount), per image copied.

The CPU the two registries spent per run is reported too: on a small machine their work (hashing,
writing and linking every blob) bounds how fast any client can copy.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import IMAGETOOL, SKOPEO, Measure, compile_package, report, report_cpu, run, set_aside  # noqa: E402

FLAGS = ["--src-tls-verify=false", "--dest-tls-verify=false"]


def _push_images(layout: Path, host: str, repo: str, count: int, layer_size: int, seed: int) -> None:
    """`count` distinct images into `host`/`repo`, tags t000..., pushed in-process (several at once)."""
    import io

    from imagetool.copy import ACCEPT_ANYTHING, CopyOptions, copy_image
    from imagetool.copy.batch import BatchJob, copy_batch
    from imagetool.transports import parse_image_name
    from imagetool.transports.base import SystemContext
    from tests.lib.images import random_image

    for i in range(count):
        random_image(layout, f"t{i:03d}", n_layers=2, size=layer_size, seed=seed + i)
    options = CopyOptions(dest_ctx=SystemContext(tls_verify=False), policy=ACCEPT_ANYTHING)

    def job(i: int) -> BatchJob:
        return BatchJob(str(i), lambda _p: copy_image(parse_image_name(f"oci:{layout}:t{i:03d}"),  # type: ignore[misc]
                                                       parse_image_name(f"docker://{host}/{repo}:t{i:03d}"), options))
    copy_batch([job(i) for i in range(count)], parallel=8, keep_going=False, quiet=True, out=io.StringIO(),
               err=io.StringIO(), error_prefix=lambda i: "")


def _push_index(layout: Path, host: str, platforms: int, layer_size: int, shared: bool = False,
                repo: str = "multi/img") -> None:
    """An index of `platforms` images of two layers each; with `shared`, the first layer is the same in all
    (an arch-independent base, as multi-platform images often have)."""
    from imagetool import media
    from imagetool.descriptor import Descriptor, Platform
    from imagetool.manifest import Index
    from imagetool.store import refs
    from imagetool.store.layout import LayoutStore
    from tests.lib.images import random_image, random_layer, write_image

    arches = ["amd64", "arm64", "ppc64le", "s390x", "386", "riscv64", "mips64le", "arm"][:platforms]
    if shared:
        base = random_layer(layer_size, 950)
        images = [write_image(layout, None, [base, random_layer(layer_size, 960 + i)], architecture=a, create=i == 0)
                  for i, a in enumerate(arches)]
    else:
        images = [random_image(layout, None, n_layers=2, size=layer_size, seed=900 + i) for i in range(len(arches))]
    store = LayoutStore.open(layout)
    index = Index.build(media.OCI_INDEX, [d.with_(platform=Platform(a, "linux"), annotations={})
                                          for d, a in zip(images, arches, strict=True)])
    store.put_bytes(index.raw)
    store.update_index(lambda _: [refs.named(Descriptor(media.OCI_INDEX, index.digest, len(index.raw)), "all")])
    run([*IMAGETOOL, "copy", "-q", "--all", "--dest-tls-verify=false", f"oci:{layout}:all",
         f"docker://{host}/{repo}:all"], repeat=1)


_ACCESS = re.compile(r'"(GET|HEAD|POST|PUT|PATCH|DELETE) (\S+) HTTP/[\d.]+" (\d+)')


def request_kind(method: str, path: str) -> str:
    """What a registry request was for, from its method and path."""
    path, _, query = path.partition("?")
    if path == "/v2/":
        return "ping"
    if path.endswith("/tags/list"):
        return "tags"
    if "/manifests/" in path:
        return f"manifest {method}"
    if "/blobs/uploads/" in path:
        if method == "POST" and "mount=" in query:
            return "mount POST"
        return f"upload {method}"
    if "/blobs/" in path:
        return f"blob {method}"
    return f"other {method}"


def count_requests(logs: list[Path], offsets: list[int]) -> collections.Counter[str]:
    """The requests in each access log after its offset, by kind (with the registry's index as prefix)."""
    counts: collections.Counter[str] = collections.Counter()
    for i, (log, offset) in enumerate(zip(logs, offsets, strict=True)):
        with open(log, "rb") as f:
            f.seek(offset)
            for line in f.read().decode(errors="replace").splitlines():
                m = _ACCESS.search(line)
                if m and "msg=" not in line:
                    counts[f"{'src' if i == 0 else 'dst'} {request_kind(m.group(1), m.group(2))}"] += 1
    return counts


def process_cpu(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def report_requests(case: str, per: int, ours: collections.Counter[str], theirs: collections.Counter[str]) -> None:
    print(f"\n{case}: requests per image ({per} images)   ours / skopeo")
    for kind in sorted(set(ours) | set(theirs)):
        print(f"  {kind:24} {ours[kind] / per:7.2f} {theirs[kind] / per:7.2f}")
    print(f"  {'total':24} {sum(ours.values()) / per:7.2f} {sum(theirs.values()) / per:7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--tags", type=int, default=200)
    parser.add_argument("--platforms", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--requests", action="store_true", help="count each case's HTTP requests instead")
    args = parser.parse_args()
    compile_package()
    from tests.lib.registry import start_registry, stop_registry

    with tempfile.TemporaryDirectory(prefix="sync-bench-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        a = start_registry(work / "reg-a", "a")
        b = start_registry(work / "reg-b", "b")
        env = {"XDG_CACHE_HOME": str(work / "cache")}

        def fresh_b() -> None:
            set_aside(b.root, work / "trash")
            set_aside(work / "cache", work / "trash")

        rows: list[tuple[str, Measure, Measure | None, str]] = []
        try:
            _push_images(work / "many", a.host, "many/app", args.images, 20_000, 1000)
            _push_images(work / "tags", a.host, "tags/app", args.tags, 2_000, 5000)
            _push_index(work / "index", a.host, args.platforms, 5 << 20)
            _push_index(work / "shared", a.host, args.platforms, 5 << 20, shared=True, repo="shared/img")

            logs = [a.log_path, b.log_path]
            registry_cpu: list[tuple[str, float, float]] = []

            def counted(argv: list[str], env: dict[str, str] | None = None) -> collections.Counter[str]:
                offsets = [log.stat().st_size for log in logs]
                run(argv, env=env, before=fresh_b, repeat=1)
                time.sleep(0.2)  # the access log line follows the answer
                return count_requests(logs, offsets)

            def pair(case: str, ours_argv: list[str], theirs_argv: list[str], target: str,
                     before: Callable[[], None] = fresh_b, per: int = 1) -> None:
                if args.requests:
                    report_requests(case, per, counted([*IMAGETOOL, *ours_argv], env), counted([*SKOPEO, *theirs_argv]))
                    return
                registries = [reg.proc.pid for reg in (a, b) if reg.proc is not None]
                spent = [sum(process_cpu(pid) for pid in registries)]
                ours = run([*IMAGETOOL, *ours_argv], env=env, before=before, repeat=args.repeat)
                spent.append(sum(process_cpu(pid) for pid in registries))
                theirs = run([*SKOPEO, *theirs_argv], before=before, repeat=args.repeat)
                spent.append(sum(process_cpu(pid) for pid in registries))
                rows.append((case, ours, theirs, target))
                registry_cpu.append((case, (spent[1] - spent[0]) / args.repeat, (spent[2] - spent[1]) / args.repeat))

            sync = ["sync", "--src", "docker", "--dest", "docker", *FLAGS]
            pair(f"sync {args.images} small images reg -> reg", [*sync, f"{a.host}/many/app", f"{b.host}/mirror"],
                 [*sync, f"{a.host}/many/app", f"{b.host}/mirror"], "<= 0.4x, RSS <= 120 MiB",
                 per=args.images)
            pair(f"sync {args.tags}-tag repository reg -> reg", [*sync, f"{a.host}/tags/app", f"{b.host}/mirror"],
                 [*sync, f"{a.host}/tags/app", f"{b.host}/mirror"], "<= 0.3x, RSS <= 120 MiB",
                 per=args.tags)
            copy_all = ["copy", "-q", "--all", *FLAGS, f"docker://{a.host}/multi/img:all",
                        f"docker://{b.host}/multi/img:all"]
            pair(f"copy --all {args.platforms}-platform index", copy_all, copy_all, "<= 0.4x, RSS <= 120 MiB",
                 per=args.platforms)
            copy_shared = ["copy", "-q", "--all", *FLAGS, f"docker://{a.host}/shared/img:all",
                           f"docker://{b.host}/shared/img:all"]
            pair(f"copy --all {args.platforms} platforms, one layer shared", copy_shared, copy_shared, "(reported)",
                 per=args.platforms)
        finally:
            stop_registry(a)
            stop_registry(b)
        if rows:
            report(rows)
            report_cpu(rows, "skopeo")
            for case, ours_cpu, theirs_cpu in registry_cpu:
                print(f"registries' CPU per run, {case:44} with ours {ours_cpu:.3f} s  with skopeo {theirs_cpu:.3f} s")


if __name__ == "__main__":
    main()
