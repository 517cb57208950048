"""The file transports against skopeo 1.9: round trips, each reading what the other writes, clean failures.

What a copy keeps: between oci:, oci-archive:, dir: and the local store the manifest digest is kept
(nothing is converted). docker-archive: has no manifest of its own; writing one stores the config bytes
unchanged and the layers uncompressed, so what it keeps is the config digest (the image ID) and the diff
IDs; reading one yields the Docker schema 2 manifest containers/image generates, and that manifest's
digest is kept by docker-archive: and dir: (oci:, oci-archive: and the local store compress the layers).
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from imagetool.digest import Digest
from imagetool.manifest import ImageConfig, parse_manifest
from tests.lib.cli import imagetool, one_line_error, skopeo
from tests.lib.images import random_image

KEEPING = ("oci", "oci-archive", "dir", "local")
FILE_TRANSPORTS = ("oci", "oci-archive", "dir", "docker-archive")


def _ref(kind: str, root: Path, name: str) -> str:
    return {"oci": f"oci:{root}/{name}-layout:v1", "oci-archive": f"oci-archive:{root}/{name}.oci.tar:v1",
            "dir": f"dir:{root}/{name}-dir", "docker-archive": f"docker-archive:{root}/{name}.docker.tar",
            "local": f"localhost/{name}:v1"}[kind]


def _copy(src: str, dst: str, digestfile: Path) -> Digest:
    imagetool("copy", "-q", "--digestfile", str(digestfile), src, dst)
    return Digest.parse(digestfile.read_text())


def _inspect(ref: str) -> dict[str, object]:
    return json.loads(imagetool("inspect", ref).stdout)  # type: ignore[no-any-return]


def _skopeo_inspect(ref: str) -> dict[str, object]:
    return json.loads(skopeo("inspect", ref).stdout)  # type: ignore[no-any-return]


@pytest.fixture
def origin(tmp_path: Path) -> tuple[str, Digest]:
    desc = random_image(tmp_path / "origin", "v1", n_layers=2, size=30_000)
    return f"oci:{tmp_path}/origin:v1", desc.digest


@pytest.mark.parametrize("src_kind", KEEPING)
def test_round_trips_keep_the_manifest_digest(tmp_path: Path, origin: tuple[str, Digest], src_kind: str) -> None:
    ref, digest = origin
    src = _ref(src_kind, tmp_path, "src")
    assert _copy(ref, src, tmp_path / "d0") == digest
    for dst_kind in KEEPING:
        dst = _ref(dst_kind, tmp_path, f"to-{dst_kind}")
        assert _copy(src, dst, tmp_path / "d1") == digest, (src_kind, dst_kind)
        raw = imagetool("inspect", "--raw", dst).stdout.encode()
        assert Digest.of(raw) == digest
        if dst_kind != "local":
            assert _skopeo_inspect(dst)["Digest"] == str(digest)


def test_docker_archive_keeps_config_and_diff_ids_everywhere(tmp_path: Path, origin: tuple[str, Digest]) -> None:
    ref, digest = origin
    source = parse_manifest(imagetool("inspect", "--raw", ref).stdout.encode())
    config = ImageConfig.parse(imagetool("inspect", "--config", ref).stdout.encode())
    archive = _ref("docker-archive", tmp_path, "a")
    _copy(ref, archive, tmp_path / "d")
    generated = Digest.of(imagetool("inspect", "--raw", archive).stdout.encode())
    for dst_kind in (*KEEPING, "docker-archive"):
        dst = _ref(dst_kind, tmp_path, f"from-archive-{dst_kind}")
        out = _copy(archive, dst, tmp_path / "d")
        manifest = parse_manifest(imagetool("inspect", "--raw", dst).stdout.encode())
        assert manifest.config.digest == source.config.digest, dst_kind
        assert ImageConfig.parse(imagetool("inspect", "--config", dst).stdout.encode()).diff_ids == config.diff_ids
        if dst_kind in ("dir", "docker-archive"):
            assert out == generated, dst_kind
        else:  # OCI layouts and the local store keep layers compressed: the plain tars get gzipped
            assert out not in (generated, digest)
            assert all(layer.media_type.endswith("gzip") for layer in manifest.layers)
        if dst_kind != "local":
            assert _skopeo_inspect(dst)["Digest"] == str(out)
        # and back into an archive: the same generated manifest
        if dst_kind != "docker-archive":
            again = _ref("docker-archive", tmp_path, f"again-{dst_kind}")
            _copy(dst, again, tmp_path / "d")
            assert Digest.of(imagetool("inspect", "--raw", again).stdout.encode()) == generated


@pytest.mark.parametrize("kind", FILE_TRANSPORTS)
def test_skopeo_reads_what_we_write(tmp_path: Path, origin: tuple[str, Digest], kind: str) -> None:
    ref, _ = origin
    dst = _ref(kind, tmp_path, "ours")
    imagetool("copy", "-q", ref, dst)
    ours, theirs = _inspect(dst), _skopeo_inspect(dst)
    assert ours["Digest"] == theirs["Digest"]
    assert ours["Layers"] == theirs["Layers"]
    skopeo("copy", "-q", dst, f"oci:{tmp_path}/check:v1")


@pytest.mark.parametrize("kind", FILE_TRANSPORTS)
def test_we_read_what_skopeo_writes(tmp_path: Path, origin: tuple[str, Digest], kind: str) -> None:
    ref, digest = origin
    dst = _ref(kind, tmp_path, "theirs")
    skopeo("copy", "-q", ref, dst)
    ours, theirs = _inspect(dst), _skopeo_inspect(dst)
    assert ours["Digest"] == theirs["Digest"]
    assert ours["Layers"] == theirs["Layers"]
    assert imagetool("inspect", "--raw", dst).stdout.encode() == skopeo("inspect", "--raw", dst).stdout.encode()
    out = _copy(dst, f"localhost/from-skopeo-{kind}:v1", tmp_path / "d")
    assert (out == digest) == (kind != "docker-archive")


def _truncate(path: Path) -> None:
    members = tarfile.open(path).getmembers()
    big = max(members, key=lambda m: m.size)
    path.write_bytes(path.read_bytes()[: big.offset_data + big.size // 2])


@pytest.mark.parametrize("kind", ["oci-archive", "docker-archive"])
def test_truncated_archives_from_skopeo(tmp_path: Path, origin: tuple[str, Digest], kind: str) -> None:
    ref, _ = origin
    archive = _ref(kind, tmp_path, "cut")
    skopeo("copy", "-q", ref, archive)
    _truncate(Path(archive.split(":")[1]))
    imagetool("copy", "-q", ref, f"dir:{tmp_path}/dest")
    before = {p.name: p.read_bytes() for p in (tmp_path / "dest").iterdir()}
    line = one_line_error(imagetool("copy", archive, f"dir:{tmp_path}/dest", check=False))
    assert "cut" in line
    assert {p.name: p.read_bytes() for p in (tmp_path / "dest").iterdir()} == before
    assert skopeo("inspect", archive, check=False).returncode != 0  # skopeo refuses it too


@pytest.mark.parametrize("kind", FILE_TRANSPORTS)
def test_missing_paths(tmp_path: Path, kind: str) -> None:
    line = one_line_error(imagetool("copy", _ref(kind, tmp_path, "nowhere"), f"oci:{tmp_path}/o:v1", check=False))
    assert "nowhere" in line
    assert not (tmp_path / "o").exists()


def test_blob_not_matching_its_digest_in_a_skopeo_dir(tmp_path: Path, origin: tuple[str, Digest]) -> None:
    ref, _ = origin
    skopeo("copy", "-q", ref, f"dir:{tmp_path}/src")
    manifest = parse_manifest((tmp_path / "src" / "manifest.json").read_bytes())
    blob = tmp_path / "src" / manifest.layers[0].digest.hex
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x01
    blob.write_bytes(bytes(data))
    random_image(tmp_path / "other", "v1", seed=7)
    for dst in (f"dir:{tmp_path}/dest", f"oci-archive:{tmp_path}/dest.tar", f"docker-archive:{tmp_path}/d.tar"):
        if not dst.startswith("docker-archive"):  # destinations that already hold another image
            imagetool("copy", "-q", f"oci:{tmp_path}/other:v1", dst)
        snapshot = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
        line = one_line_error(imagetool("copy", f"dir:{tmp_path}/src", dst, check=False))
        assert "digest" in line or "corrupt gzip" in line  # decompressing (docker-archive) fails first
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == snapshot
    assert parse_manifest((tmp_path / "dest" / "manifest.json").read_bytes()).config.digest == \
        parse_manifest(imagetool("inspect", "--raw", f"oci:{tmp_path}/other:v1").stdout.encode()).config.digest
    assert not (tmp_path / "d.tar").exists()
