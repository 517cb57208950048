"""docker-archive and oci-archive files compressed as a whole (gzip, xz, bzip2, zstd) read as the plain
archive would, as skopeo reads them: list-tags, inspect and copy, with skopeo agreeing on each digest."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
from pathlib import Path
from typing import Callable

import pytest
import zstandard

from tests.lib.cli import imagetool, one_line_error, skopeo
from tests.lib.images import random_image

COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "gz": gzip.compress, "xz": lzma.compress, "bz2": bz2.compress,
    "zst": lambda data: zstandard.ZstdCompressor().compress(data),
}


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A docker-archive and an oci-archive of one image, each compressed every way."""
    d = tmp_path_factory.mktemp("compressed-archives")
    random_image(d / "src", "a", n_layers=2, seed=3)
    imagetool("copy", "-q", f"oci:{d}/src:a", f"docker-archive:{d}/docker.tar:example.com/one:a")
    imagetool("copy", "-q", f"oci:{d}/src:a", f"oci-archive:{d}/oci.tar:a")
    for kind in ("docker", "oci"):
        plain = (d / f"{kind}.tar").read_bytes()
        for ext, compress in COMPRESSORS.items():
            (d / f"{kind}.tar.{ext}").write_bytes(compress(plain))
    return d


@pytest.mark.parametrize("ext", sorted(COMPRESSORS))
def test_docker_archive_compressed(archives: Path, ext: str, tmp_path: Path) -> None:
    path = archives / f"docker.tar.{ext}"
    tags = json.loads(imagetool("list-tags", f"docker-archive:{path}").stdout)["Tags"]
    assert tags == ["example.com/one:a"]
    ours = imagetool("inspect", "--format", "{{.Digest}}", f"docker-archive:{path}").stdout.strip()
    theirs = skopeo("inspect", "--format", "{{.Digest}}", f"docker-archive:{archives}/docker.tar").stdout.strip()
    assert ours == theirs
    imagetool("copy", "-q", f"docker-archive:{path}", f"dir:{tmp_path}/out")
    assert skopeo("inspect", "--format", "{{.Digest}}", f"dir:{tmp_path}/out").stdout.strip() == ours


@pytest.mark.parametrize("ext", sorted(COMPRESSORS))
def test_oci_archive_compressed(archives: Path, ext: str, tmp_path: Path) -> None:
    path = archives / f"oci.tar.{ext}"
    ours = imagetool("inspect", "--format", "{{.Digest}}", f"oci-archive:{path}:a").stdout.strip()
    theirs = skopeo("inspect", "--format", "{{.Digest}}", f"oci-archive:{path}:a").stdout.strip()
    assert ours == theirs and ours.startswith("sha256:")
    imagetool("copy", "-q", f"oci-archive:{path}:a", f"oci:{tmp_path}/out:a")
    assert skopeo("inspect", "--format", "{{.Digest}}", f"oci:{tmp_path}/out:a").stdout.strip() == ours


@pytest.mark.parametrize("kind", ["docker", "oci"])
@pytest.mark.parametrize("ext", ["xz", "bz2"])
def test_truncated_compressed_archive_is_one_clear_error(archives: Path, tmp_path: Path, kind: str,
                                                         ext: str) -> None:
    data = (archives / f"{kind}.tar.{ext}").read_bytes()
    cut = tmp_path / f"cut.tar.{ext}"
    cut.write_bytes(data[: len(data) // 2])
    proc = imagetool("inspect", f"{kind}-archive:{cut}", check=False)
    line = one_line_error(proc)
    assert proc.returncode == 1 and str(cut) in line and ("corrupt" in line or "truncated" in line), line
