"""import_rootfs / `imagetool import`: a busybox root filesystem becomes an image peers read and run."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest
import zstandard

from imagetool.build.importer import import_rootfs
from imagetool.errors import BuildError, DockerfileError
from imagetool.manifest import ImageConfig, parse_manifest
from imagetool.store import refs
from imagetool.store.layout import LayoutStore
from tests.lib.bundles import runc_run, umoci_unpack, write_tree
from tests.lib.cli import imagetool, one_line_error, skopeo
from tests.lib.images import busybox_files, tar_bytes

NAME = "localhost/bb:latest"


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "rootfs", {**busybox_files(), "etc/hello": b"hello from the import\n"})


def _image(store: Path, name: str = NAME) -> tuple[dict, ImageConfig, LayoutStore]:
    layout = LayoutStore.open(store)
    desc = refs.resolve(layout, name)
    manifest = parse_manifest(layout.read_blob(desc.digest))
    config = ImageConfig.parse(layout.read_blob(manifest.config.digest))
    return json.loads(manifest.raw), config, layout


def test_import_directory_read_by_skopeo_and_run_by_umoci_and_runc(rootfs: Path, local_store: Path,
                                                                   tmp_path: Path) -> None:
    out = imagetool("import", str(rootfs), "bb", "--change", 'CMD ["/bin/sh", "-c", "cat /etc/hello; id -u"]',
                    "-c", "ENV GREETING=hi", "-c", "WORKDIR /root", "-c", "LABEL origin=import",
                    "-m", "from a directory")
    doc, config, _ = _image(local_store)
    assert out.stdout.strip() == doc["config"]["digest"].split(":")[1]
    info = json.loads(skopeo("inspect", f"oci:{local_store}:{NAME}").stdout)
    assert len(info["Layers"]) == 1 and info["Labels"] == {"origin": "import"}
    assert "GREETING=hi" in info["Env"]
    assert config.doc["history"][0]["comment"] == "from a directory"
    assert config.config["WorkingDir"] == "/root"
    bundle = umoci_unpack(local_store, NAME, tmp_path / "bundle")
    assert (bundle / "rootfs" / "bin" / "sh").is_symlink()
    assert (bundle / "rootfs" / "etc" / "hello").read_bytes() == b"hello from the import\n"
    assert runc_run(bundle) == "hello from the import\n0\n"


def test_import_is_deterministic(rootfs: Path, local_store: Path) -> None:
    store = LayoutStore.create(local_store)
    a = import_rootfs(rootfs, "a", store=store, timestamp=1700000000)
    b = import_rootfs(rootfs, "b", store=store, timestamp=1700000000)
    assert a.digest == b.digest
    c = import_rootfs(rootfs, "c", store=store)   # no timestamp: file times kept, config made now
    import_rootfs(rootfs, "d", store=store)
    assert c.digest != a.digest
    assert _image(local_store, "localhost/c:latest")[0]["layers"] == \
        _image(local_store, "localhost/d:latest")[0]["layers"]
    _, config, _ = _image(local_store, "localhost/a:latest")
    assert config.created == "2023-11-14T22:13:20Z"


def test_source_date_epoch_sets_the_time_and_clamps_files(rootfs: Path, local_store: Path,
                                                          tmp_path: Path) -> None:
    imagetool("import", str(rootfs), "sde", env={"SOURCE_DATE_EPOCH": "86400"})
    _, config, _ = _image(local_store, "localhost/sde:latest")
    assert config.created == "1970-01-02T00:00:00Z"
    bundle = umoci_unpack(local_store, "localhost/sde:latest", tmp_path / "bundle")
    assert (bundle / "rootfs" / "etc" / "hello").stat().st_mtime == 86400


def test_import_tarball_keeps_its_bytes(local_store: Path, tmp_path: Path) -> None:
    raw = tar_bytes(busybox_files())
    tgz = tmp_path / "rootfs.tar.gz"
    tgz.write_bytes(gzip.compress(raw))
    imagetool("import", str(tgz), "fromtar", "--format", "docker", "--compress", "zstd")
    doc, config, _ = _image(local_store, "localhost/fromtar:latest")
    assert config.doc["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(raw).hexdigest()]
    assert doc["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert doc["layers"][0]["mediaType"] == "application/vnd.docker.image.rootfs.diff.tar.zstd"
    blob = (local_store / "blobs" / "sha256" / doc["layers"][0]["digest"].split(":")[1]).read_bytes()
    assert zstandard.ZstdDecompressor().decompressobj().decompress(blob) == raw


def test_bad_input_is_one_line_and_stores_nothing(local_store: Path, tmp_path: Path, rootfs: Path) -> None:
    imagetool("import", str(rootfs), "keep")
    index_before = (local_store / "index.json").read_bytes()
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"this is not a tar archive" * 100)
    assert "not a valid tar archive" in one_line_error(imagetool("import", str(junk), "junk", check=False, timeout=60))
    line = one_line_error(imagetool("import", str(rootfs), "x", "-c", "RUN rm -rf /", check=False))
    assert "RUN is not allowed in a change" in line
    line = one_line_error(imagetool("import", str(rootfs), "Bad:Name:x", check=False))
    assert (local_store / "index.json").read_bytes() == index_before
    blobs = set((local_store / "blobs" / "sha256").iterdir())
    assert not [p for p in blobs if p.name.startswith(".tmp-")]


def test_library_errors_are_typed(tmp_path: Path, rootfs: Path) -> None:
    store = LayoutStore.create(tmp_path / "s")
    with pytest.raises(BuildError):
        import_rootfs(tmp_path / "missing", "m", store=store)
    with pytest.raises(DockerfileError):
        import_rootfs(rootfs, "m", ["FROM busybox"], store=store)
    assert store.index().manifests == ()
