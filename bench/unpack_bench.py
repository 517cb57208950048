"""Layer unpack benchmark of the runtime issue: imagetool's unpacker vs GNU `tar -x` and `umoci unpack`.

    python bench/unpack_bench.py [--files 20000] [--repeat 5] [--dir /dev/shm]

One generated layer of 20,000 files (100 directories, sizes from 0 to 30 KB, a few
symlinks and hardlinks), measured in the same run as whole commands, the tools taking
turns run by run so that load from elsewhere hits all alike (medians). The default
target is a tmpfs: on a shared disk the journal's queue, not the unpacker, sets the time;
pass --dir /var/tmp to measure on disk anyway.
- the uncompressed tar: `tar -xf` vs imagetool's unpack (target <= 1.5x GNU tar);
- the gzip blob: `tar -xzf` vs imagetool's unpack_layer vs `umoci unpack` of an image
  holding it; and SnapshotStore.prepare, which also checks the blob digest and diff_id.
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import interleaved, report  # noqa: E402
from imagetool import media  # noqa: E402
from imagetool.descriptor import Descriptor  # noqa: E402
from imagetool.digest import Digest  # noqa: E402
from imagetool.manifest import ImageConfig, Manifest  # noqa: E402
from imagetool.store import refs  # noqa: E402
from imagetool.store.layout import LayoutStore  # noqa: E402

PY = sys.executable
OURS_TAR = ("import sys; from imagetool.layer.unpack import UnpackOptions, unpack; "
            "unpack(open(sys.argv[1], 'rb'), sys.argv[2], UnpackOptions(whiteouts='keep'))")
OURS_BLOB = ("import sys; from imagetool.layer.unpack import UnpackOptions, unpack_layer; "
             "unpack_layer(open(sys.argv[1], 'rb'), sys.argv[2], UnpackOptions(whiteouts='apply'))")
OURS_SNAPSHOT = ("import sys; from imagetool.store.layout import LayoutStore; "
                 "from imagetool.store.snapshots import SnapshotStore; "
                 "from imagetool.manifest import parse_manifest, ImageConfig; from imagetool.store import refs; "
                 "s = LayoutStore.open(sys.argv[1]); m = parse_manifest(s.read_blob(refs.resolve(s, 'bench').digest)); "
                 "c = ImageConfig.parse(s.read_blob(m.config.digest)); "
                 "SnapshotStore(s).prepare(list(zip(m.layers, c.diff_ids)))")


def make_layer(work: Path, files: int) -> Path:
    """A tree of `files` files archived by GNU tar (sorted, numeric owners)."""
    rng = random.Random(20000)
    src = work / "src"
    for n in range(files):
        d = src / f"dir{n % 100:03d}"
        if n < 100:
            d.mkdir(parents=True)
        # a distribution's mix: mostly small files, some large ones, compressible (about 3:1) content
        size = rng.choice((0, 60, 200, 600, 1500, 4000, 9000, 30000)) if n % 10 else rng.randrange(200)
        (d / f"file{n:05d}").write_bytes((rng.randbytes(max(1, size // 3)) * 3)[:size])
    for n in range(min(50, files // 100)):
        os.symlink(f"../dir000/file{n:05d}", src / f"dir001/link{n}")
        os.link(src / f"dir002/file{n * 100 + 2:05d}", src / f"dir003/hard{n}")
    out = work / "layer.tar"
    subprocess.run(["tar", "--sort=name", "--numeric-owner", "--format=pax", "-C", str(src), "-cf", str(out), "."],
                   check=True)
    shutil.rmtree(src)
    return out


def make_image(work: Path, layer_tar: Path) -> tuple[Path, Path]:
    """The layer gzip'd, and an OCI layout holding an image of it (for umoci and snapshots)."""
    raw = layer_tar.read_bytes()
    blob = work / "layer.tar.gz"
    blob.write_bytes(gzip.compress(raw, compresslevel=6, mtime=0))
    layout = work / "layout"
    store = LayoutStore.create(layout)
    with open(blob, "rb") as f:
        digest, size = store.put_blob(f)
    config = ImageConfig.build({"architecture": "amd64", "os": "linux", "config": {},
                                "rootfs": {"type": "layers", "diff_ids": [str(Digest.of(raw))]}})
    cfg_digest = store.put_bytes(config.raw)
    manifest = Manifest.build(media.OCI_MANIFEST, Descriptor(media.OCI_CONFIG, cfg_digest, len(config.raw)),
                              [Descriptor(media.OCI_LAYER_GZIP, digest, size)])
    m_digest = store.put_bytes(manifest.raw)
    refs.set_name(store, "bench", Descriptor(media.OCI_MANIFEST, m_digest, len(manifest.raw)))
    return blob, layout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", default="/dev/shm" if os.path.isdir("/dev/shm") else "/var/tmp")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="unpack-bench-", dir=args.dir) as tmp:
        work = Path(tmp)
        layer = make_layer(work, args.files)
        blob, layout = make_image(work, layer)
        target = work / "target"

        def fresh() -> None:
            if target.exists():
                shutil.rmtree(target)
            target.mkdir()
            subprocess.run(["sync"], check=True)

        def fresh_bundle() -> None:
            if target.exists():
                shutil.rmtree(target)
            subprocess.run(["sync"], check=True)

        def fresh_snapshots() -> None:
            shutil.rmtree(layout / "snapshots", ignore_errors=True)
            subprocess.run(["sync"], check=True)

        mib = layer.stat().st_size / (1 << 20)
        print(f"layer: {args.files} files, {mib:.0f} MiB uncompressed, {blob.stat().st_size / (1 << 20):.0f} MiB "
              f"gzip; target in {args.dir}")
        cases = {
            "gnu_tar": (["tar", "-xf", str(layer), "-C", str(target)], fresh),
            "ours_tar": ([PY, "-c", OURS_TAR, str(layer), str(target)], fresh),
            "gnu_gz": (["tar", "-xzf", str(blob), "-C", str(target)], fresh),
            "ours_gz": ([PY, "-c", OURS_BLOB, str(blob), str(target)], fresh),
            "umoci": (["umoci", "unpack", "--image", f"{layout}:bench", str(target)], fresh_bundle),
            "snap": ([PY, "-c", OURS_SNAPSHOT, str(layout)], fresh_snapshots),
        }
        gnu_tar, ours_tar, gnu_gz, ours_gz, umoci, snap = interleaved(
            [(argv, None, before) for argv, before in cases.values()], args.repeat)
        report([
            (f"unpack {args.files}-file tar vs tar -x", ours_tar, gnu_tar, "<= 1.5x"),
            ("unpack gzip layer vs tar -xzf", ours_gz, gnu_gz, "<= 1.5x"),
            ("unpack gzip layer vs umoci unpack", ours_gz, umoci, "-"),
            ("snapshot prepare (verified) vs tar -xzf", snap, gnu_gz, "-"),
        ])


if __name__ == "__main__":
    main()
