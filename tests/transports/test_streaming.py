"""A layer bigger than the memory a copy may use travels through every file transport."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

from imagetool import gojson, media
from imagetool.descriptor import Descriptor
from imagetool.digest import Digest
from imagetool.manifest import Manifest
from imagetool.store import refs
from imagetool.store.layout import LayoutStore
from tests.lib.cli import skopeo

LAYER_MIB = 96
RSS_LIMIT_MIB = 80  # well under the layer: nothing holds it whole
_PROBE = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:]); "
          "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024, file=sys.stderr); "
          "sys.exit(p.returncode)")


def _big_image(root: Path) -> tuple[Digest, Digest]:
    """An OCI image with one uncompressed layer of random bytes; returns (manifest, layer) digests."""
    data = root / "big.bin"
    with open(data, "wb") as f:
        for _ in range(LAYER_MIB // 8):
            f.write(os.urandom(8 << 20))
    with tarfile.open(root / "big.tar", "w") as tar:
        tar.add(data, arcname="big.bin")
    data.unlink()
    store = LayoutStore.create(root / "oci")
    with open(root / "big.tar", "rb") as f:
        digest, size = store.put_blob(f)
    (root / "big.tar").unlink()
    cfg = gojson.dumps({"architecture": "amd64", "os": "linux", "config": {},
                        "rootfs": {"type": "layers", "diff_ids": [str(digest)]}})
    config = Descriptor(media.OCI_CONFIG, store.put_bytes(cfg), len(cfg))
    manifest = Manifest.build(media.OCI_MANIFEST, config, [Descriptor(media.OCI_LAYER, digest, size)])
    refs.set_name(store, "v1", Descriptor(media.OCI_MANIFEST, store.put_bytes(manifest.raw), len(manifest.raw)))
    return manifest.digest, digest


def _peak_rss_mib(*args: str) -> int:
    proc = subprocess.run([sys.executable, "-c", _PROBE, sys.executable, "-m", "imagetool", "copy", "-q", *args],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return int(proc.stderr.strip().splitlines()[-1])


def test_big_layer_streams_through_every_file_transport(tmp_path: Path) -> None:
    digest, layer = _big_image(tmp_path)
    chain = [f"oci:{tmp_path}/oci:v1", f"docker-archive:{tmp_path}/a.tar", f"dir:{tmp_path}/d",
             f"oci-archive:{tmp_path}/o.tar:v1", f"oci:{tmp_path}/back:v1", f"docker-archive:{tmp_path}/b.tar"]
    for src, dst in zip(chain, chain[1:], strict=False):
        rss = _peak_rss_mib(src, dst)
        assert rss < RSS_LIMIT_MIB, (src, dst, rss)
    # plain layers stay plain in docker-archive and dir, get gzipped for the OCI layouts
    assert str(digest) not in skopeo("inspect", f"oci:{tmp_path}/back:v1").stdout
    assert str(layer) not in skopeo("inspect", f"oci:{tmp_path}/back:v1").stdout
    assert (tmp_path / "d" / layer.hex).stat().st_size > LAYER_MIB << 20
    assert layer.hex + ".tar" in tarfile.open(tmp_path / "b.tar").getnames()
    assert skopeo("inspect", "--raw", f"docker-archive:{tmp_path}/b.tar").stdout == \
        skopeo("inspect", "--raw", f"docker-archive:{tmp_path}/a.tar").stdout
