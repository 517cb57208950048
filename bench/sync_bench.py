"""Mirroring benchmarks: `sync` and `copy --all` between loopback registries, against skopeo in the same run.

    python bench/sync_bench.py [--images 24] [--tags 200] [--platforms 4] [--repeat 3]

Cases: a repository of `--images` distinct small images (two layers of 20 KB each), a repository
of `--tags` tags, and `copy --all` of a `--platforms`-platform index of images of two 5 MiB layers
(distinct, then with the first layer the same in every platform); each into a fresh destination
registry every run. skopeo copies sync's images (and an index's platforms) one after another.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import IMAGETOOL, SKOPEO, Measure, compile_package, report, run  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--tags", type=int, default=200)
    parser.add_argument("--platforms", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    compile_package()
    from tests.lib.registry import start_registry, stop_registry

    with tempfile.TemporaryDirectory(prefix="sync-bench-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        a = start_registry(work / "reg-a", "a")
        b = start_registry(work / "reg-b", "b")
        env = {"XDG_CACHE_HOME": str(work / "cache")}

        def fresh_b() -> None:
            shutil.rmtree(b.root, ignore_errors=True)
            shutil.rmtree(work / "cache", ignore_errors=True)

        rows: list[tuple[str, Measure, Measure | None, str]] = []
        try:
            _push_images(work / "many", a.host, "many/app", args.images, 20_000, 1000)
            _push_images(work / "tags", a.host, "tags/app", args.tags, 2_000, 5000)
            _push_index(work / "index", a.host, args.platforms, 5 << 20)
            _push_index(work / "shared", a.host, args.platforms, 5 << 20, shared=True, repo="shared/img")

            def pair(case: str, ours_argv: list[str], theirs_argv: list[str], target: str,
                     before: Callable[[], None] = fresh_b) -> None:
                ours = run([*IMAGETOOL, *ours_argv], env=env, before=before, repeat=args.repeat)
                theirs = run([*SKOPEO, *theirs_argv], before=before, repeat=args.repeat)
                rows.append((case, ours, theirs, target))

            sync = ["sync", "--src", "docker", "--dest", "docker", *FLAGS]
            pair(f"sync {args.images} small images reg -> reg", [*sync, f"{a.host}/many/app", f"{b.host}/mirror"],
                 [*sync, f"{a.host}/many/app", f"{b.host}/mirror"], "<= 0.4x, RSS <= 120 MiB")
            pair(f"sync {args.tags}-tag repository reg -> reg", [*sync, f"{a.host}/tags/app", f"{b.host}/mirror"],
                 [*sync, f"{a.host}/tags/app", f"{b.host}/mirror"], "<= 0.3x, RSS <= 120 MiB")
            copy_all = ["copy", "-q", "--all", *FLAGS, f"docker://{a.host}/multi/img:all",
                        f"docker://{b.host}/multi/img:all"]
            pair(f"copy --all {args.platforms}-platform index", copy_all, copy_all, "<= 0.4x, RSS <= 120 MiB")
            copy_shared = ["copy", "-q", "--all", *FLAGS, f"docker://{a.host}/shared/img:all",
                           f"docker://{b.host}/shared/img:all"]
            pair(f"copy --all {args.platforms} platforms, one layer shared", copy_shared, copy_shared, "(reported)")
        finally:
            stop_registry(a)
            stop_registry(b)
        report(rows)


if __name__ == "__main__":
    main()
