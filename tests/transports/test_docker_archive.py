"""docker-archive: — the `docker save` format, byte-compatible with what skopeo writes and reads."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from imagetool import media
from imagetool.copy import CopyOptions, copy_image
from imagetool.digest import Digest
from imagetool.errors import DigestMismatch, InvalidReference, LayoutError, ManifestUnknown
from imagetool.manifest import ImageConfig, parse_manifest
from imagetool.transports import SystemContext, parse_image_name
from tests.lib.cli import imagetool, one_line_error, skopeo
from tests.lib.images import make_layer, random_image, random_layer, write_image


def _copy(src: str, dst: str, **kw: object) -> Digest:
    return copy_image(parse_image_name(src), parse_image_name(dst), CopyOptions(**kw)).digest  # type: ignore


def _entries(path: Path) -> dict[str, object]:
    out: dict[str, object] = {}
    with tarfile.open(path) as tar:
        for m in tar.getmembers():
            f = tar.extractfile(m) if m.isreg() else None
            out[m.name] = f.read() if f else ("link", m.linkname)
    return out


def _raw_manifest(ref: str) -> bytes:
    return imagetool("inspect", "--raw", ref).stdout.encode()


def test_archive_matches_skopeos_entry_for_entry(tmp_path: Path) -> None:
    random_image(tmp_path / "src", "v1", n_layers=3)
    for n, suffix in enumerate(("", ":example.com/team/app:1.0")):
        ours, theirs = tmp_path / f"ours{n}.tar", tmp_path / f"theirs{n}.tar"
        imagetool("copy", "-q", f"oci:{tmp_path}/src:v1", f"docker-archive:{ours}{suffix}")
        skopeo("copy", "-q", f"oci:{tmp_path}/src:v1", f"docker-archive:{theirs}{suffix}")
        assert _entries(ours) == _entries(theirs)
        assert [m.name for m in tarfile.open(ours)] == [m.name for m in tarfile.open(theirs)]
    repo_tags = json.loads(_entries(tmp_path / "ours1.tar")["manifest.json"])[0]["RepoTags"]  # type: ignore
    assert repo_tags == ["example.com/team/app:1.0"]


def test_additional_tags_are_listed_like_skopeo(tmp_path: Path) -> None:
    random_image(tmp_path / "src", "v1", n_layers=2)
    extra = ["--additional-tag", "busybox:extra", "--additional-tag", "quay.io/a/b:2"]
    for who, run in (("ours", imagetool), ("theirs", skopeo)):
        run("copy", "-q", *extra, f"oci:{tmp_path}/src:v1", f"docker-archive:{tmp_path}/{who}.tar:app:1")
    ours, theirs = _entries(tmp_path / "ours.tar"), _entries(tmp_path / "theirs.tar")
    assert ours["manifest.json"] == theirs["manifest.json"] and ours["repositories"] == theirs["repositories"]
    assert json.loads(ours["manifest.json"])[0]["RepoTags"] == [  # type: ignore[arg-type]
        "docker.io/library/app:1", "docker.io/library/busybox:extra", "quay.io/a/b:2"]
    digests = {imagetool("inspect", "-f", "{{.Digest}}", f"docker-archive:{tmp_path}/ours.tar:{name}").stdout
               for name in ("app:1", "busybox:extra", "quay.io/a/b:2")}
    assert len(digests) == 1
    # list-tags reads an archive's names as skopeo does
    listed = imagetool("list-tags", f"docker-archive:{tmp_path}/theirs.tar").stdout
    assert json.loads(listed) == json.loads(skopeo("list-tags", f"docker-archive:{tmp_path}/ours.tar").stdout)
    assert json.loads(listed)["Tags"][0] == "docker.io/library/app:1"
    # with no name in the reference, the additional tags are the only ones; a tagless one is refused
    imagetool("copy", "-q", "--additional-tag", "x/y:z", f"oci:{tmp_path}/src:v1", f"docker-archive:{tmp_path}/n.tar")
    assert json.loads(_entries(tmp_path / "n.tar")["manifest.json"])[0]["RepoTags"] == [  # type: ignore[arg-type]
        "docker.io/x/y:z"]
    line = one_line_error(imagetool("copy", "--additional-tag", "busybox", f"oci:{tmp_path}/src:v1",
                                    f"docker-archive:{tmp_path}/bad.tar", check=False))
    assert "must be NAME:TAG" in line and not (tmp_path / "bad.tar").exists()


def test_generated_manifest_is_skopeos_byte_for_byte(tmp_path: Path) -> None:
    random_image(tmp_path / "src", "v1", n_layers=2)
    skopeo("copy", "-q", f"oci:{tmp_path}/src:v1", f"docker-archive:{tmp_path}/s.tar:x/y:z")
    raw = _raw_manifest(f"docker-archive:{tmp_path}/s.tar")
    assert raw == skopeo("inspect", "--raw", f"docker-archive:{tmp_path}/s.tar").stdout.encode()
    manifest = parse_manifest(raw)
    assert manifest.media_type == media.DOCKER_MANIFEST
    assert {layer.media_type for layer in manifest.layers} == {media.DOCKER_LAYER_GZIP}  # as c/image labels them
    theirs = json.loads(skopeo("inspect", f"docker-archive:{tmp_path}/s.tar").stdout)
    ours = json.loads(imagetool("inspect", f"docker-archive:{tmp_path}/s.tar:x/y:z").stdout)
    assert ours["Digest"] == theirs["Digest"] == str(Digest.of(raw))
    assert ours["Layers"] == theirs["Layers"]


def test_what_a_round_trip_keeps(tmp_path: Path) -> None:
    """OCI -> docker-archive -> OCI keeps the config bytes (image ID) and diff IDs, not the manifest digest
    (layers are stored uncompressed and recompressed on the way out); archive -> archive and archive -> dir ->
    archive keep the generated manifest digest and every byte of the archive's content."""
    desc = random_image(tmp_path / "src", "v1", n_layers=2)
    src_manifest = parse_manifest(_raw_manifest(f"oci:{tmp_path}/src:v1"))
    _copy(f"oci:{tmp_path}/src:v1", f"docker-archive:{tmp_path}/a.tar:app:1")
    archive_digest = Digest.of(_raw_manifest(f"docker-archive:{tmp_path}/a.tar"))
    assert _copy(f"docker-archive:{tmp_path}/a.tar", f"docker-archive:{tmp_path}/b.tar:app:1") == archive_digest
    assert _entries(tmp_path / "a.tar") == _entries(tmp_path / "b.tar")
    assert _copy(f"docker-archive:{tmp_path}/a.tar", f"dir:{tmp_path}/d") == archive_digest
    assert _copy(f"dir:{tmp_path}/d", f"docker-archive:{tmp_path}/c.tar:app:1") == archive_digest
    assert _entries(tmp_path / "a.tar") == _entries(tmp_path / "c.tar")
    back = _copy(f"docker-archive:{tmp_path}/a.tar", f"oci:{tmp_path}/back:v1")
    assert back != desc.digest
    out = parse_manifest(_raw_manifest(f"oci:{tmp_path}/back:v1"))
    assert out.config.digest == src_manifest.config.digest
    config = ImageConfig.parse(_entries(tmp_path / "a.tar")[f"{out.config.digest.hex}.json"])  # type: ignore
    assert [str(d) for d in config.diff_ids] == [str(d) for d in ImageConfig.parse(
        (tmp_path / "src" / "blobs" / "sha256" / src_manifest.config.digest.hex).read_bytes()).diff_ids]
    # layers come back really gzip-compressed, and skopeo agrees on the result
    for layer in out.layers:
        assert layer.media_type == media.OCI_LAYER_GZIP
        assert (tmp_path / "back" / "blobs" / "sha256" / layer.digest.hex).read_bytes()[:2] == b"\x1f\x8b"
    skopeo("copy", "-q", f"oci:{tmp_path}/back:v1", f"dir:{tmp_path}/check")


def test_compressed_members_and_compressed_archive(tmp_path: Path) -> None:
    """Layers stored gzip-compressed inside the archive (and a gzip of the whole archive) are served
    uncompressed, with uncompressed sizes in the generated manifest, as skopeo does."""
    layers = [random_layer(50_000, 1, "gzip"), random_layer(20_000, 2, "gzip")]
    write_image(tmp_path / "src", "v1", layers)
    skopeo("copy", "-q", f"oci:{tmp_path}/src:v1", f"docker-archive:{tmp_path}/plain.tar")
    entries = _entries(tmp_path / "plain.tar")
    with tarfile.open(tmp_path / "packed.tar", "w") as tar:
        for name, content in entries.items():
            info = tarfile.TarInfo(name)
            if isinstance(content, tuple):
                info.type, info.linkname = tarfile.SYMTYPE, content[1]
                tar.addfile(info)
                continue
            if name.endswith(".tar"):
                content = gzip.compress(content)  # type: ignore[arg-type]
            info.size = len(content)  # type: ignore[arg-type]
            tar.addfile(info, io.BytesIO(content))  # type: ignore[arg-type]
    (tmp_path / "whole.tar.gz").write_bytes(gzip.compress((tmp_path / "packed.tar").read_bytes()))
    want = skopeo("inspect", "--raw", f"docker-archive:{tmp_path}/plain.tar").stdout.encode()
    for name in ("packed.tar", "whole.tar.gz"):
        assert _raw_manifest(f"docker-archive:{tmp_path}/{name}") == want
        if name == "packed.tar":  # skopeo 1.9 fails on the gzip of a whole archive ("unexpected EOF")
            assert skopeo("inspect", "--raw", f"docker-archive:{tmp_path}/{name}").stdout.encode() == want
        _copy(f"docker-archive:{tmp_path}/{name}", f"docker-archive:{tmp_path}/out-{name}.tar")
        assert _entries(tmp_path / f"out-{name}.tar") == entries


def _two_image_archive(tmp_path: Path) -> Path:
    random_image(tmp_path / "src", "one", seed=1, n_layers=1)
    random_image(tmp_path / "src", "two", seed=2, n_layers=2)
    skopeo("copy", "-q", f"oci:{tmp_path}/src:one", f"docker-archive:{tmp_path}/1.tar:repo/one:a")
    skopeo("copy", "-q", f"oci:{tmp_path}/src:two", f"docker-archive:{tmp_path}/2.tar:repo/two:b")
    first, second = _entries(tmp_path / "1.tar"), _entries(tmp_path / "2.tar")
    items = json.loads(first.pop("manifest.json")) + json.loads(second.pop("manifest.json"))  # type: ignore
    merged = {**first, **second, "manifest.json": json.dumps(items).encode()}
    out = tmp_path / "both.tar"
    _write_tar(out, merged)
    return out


def test_choosing_an_image_of_a_multi_image_archive(tmp_path: Path) -> None:
    archive = _two_image_archive(tmp_path)
    for ref in ("repo/two:b", "docker.io/repo/two:b", "@1"):
        assert _raw_manifest(f"docker-archive:{archive}:{ref}") == \
            skopeo("inspect", "--raw", f"docker-archive:{archive}:{ref}").stdout.encode()
    assert len(parse_manifest(_raw_manifest(f"docker-archive:{archive}:@1")).layers) == 2
    assert len(parse_manifest(_raw_manifest(f"docker-archive:{archive}:repo/one:a")).layers) == 1
    assert "exactly one image" in one_line_error(imagetool("inspect", f"docker-archive:{archive}", check=False))
    with pytest.raises(ManifestUnknown):
        parse_image_name(f"docker-archive:{archive}:@2").open_source(SystemContext())
    with pytest.raises(ManifestUnknown):
        parse_image_name(f"docker-archive:{archive}:repo/one:nope").open_source(SystemContext())


def test_duplicate_layers(tmp_path: Path) -> None:
    layer = make_layer({"same.txt": b"same"}, "gzip")
    write_image(tmp_path / "src", "v1", [layer, make_layer({"b": b"b"}, "gzip"), layer])
    imagetool("copy", "-q", f"oci:{tmp_path}/src:v1", f"docker-archive:{tmp_path}/ours.tar")
    skopeo("copy", "-q", f"oci:{tmp_path}/src:v1", f"docker-archive:{tmp_path}/theirs.tar")
    assert _entries(tmp_path / "ours.tar") == _entries(tmp_path / "theirs.tar")
    assert _raw_manifest(f"docker-archive:{tmp_path}/ours.tar") == \
        skopeo("inspect", "--raw", f"docker-archive:{tmp_path}/ours.tar").stdout.encode()


def test_existing_archive_is_not_modified(tmp_path: Path) -> None:
    random_image(tmp_path / "src", "v1")
    (tmp_path / "a.tar").write_bytes(b"precious")
    line = one_line_error(imagetool("copy", f"oci:{tmp_path}/src:v1", f"docker-archive:{tmp_path}/a.tar",
                                   check=False))
    assert "exists" in line
    assert (tmp_path / "a.tar").read_bytes() == b"precious"
    (tmp_path / "empty.tar").touch()
    imagetool("copy", "-q", f"oci:{tmp_path}/src:v1", f"docker-archive:{tmp_path}/empty.tar")
    skopeo("inspect", f"docker-archive:{tmp_path}/empty.tar")


def test_corrupt_layer_and_truncated_archive_fail_cleanly(tmp_path: Path) -> None:
    random_image(tmp_path / "src", "v1", size=200_000, n_layers=2)
    skopeo("copy", "-q", f"oci:{tmp_path}/src:v1", f"docker-archive:{tmp_path}/a.tar")
    data = bytearray((tmp_path / "a.tar").read_bytes())
    members = tarfile.open(tmp_path / "a.tar").getmembers()
    big = max(members, key=lambda m: m.size)
    flipped = bytearray(data)
    flipped[big.offset_data + 1000] ^= 0xFF
    (tmp_path / "corrupt.tar").write_bytes(bytes(flipped))
    with pytest.raises(DigestMismatch):
        _copy(f"docker-archive:{tmp_path}/corrupt.tar", f"docker-archive:{tmp_path}/out.tar")
    assert not (tmp_path / "out.tar").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    line = one_line_error(imagetool("copy", f"docker-archive:{tmp_path}/corrupt.tar", f"dir:{tmp_path}/d",
                                    check=False))
    assert "digest" in line and not (tmp_path / "d").exists()
    for cut in (big.offset_data + big.size // 2, big.offset + 100, len(data) // 10):
        (tmp_path / "t.tar").write_bytes(bytes(data[:cut]))
        proc = imagetool("copy", f"docker-archive:{tmp_path}/t.tar", f"oci:{tmp_path}/o:v1", check=False)
        assert "t.tar" in one_line_error(proc)
        assert not (tmp_path / "o").exists()
    with pytest.raises(LayoutError):
        parse_image_name(f"docker-archive:{tmp_path}/missing.tar").open_source(SystemContext())


def test_reference_syntax() -> None:
    ref = parse_image_name("docker-archive:/p/a.tar:busybox")
    assert str(ref.docker_reference()) == "docker.io/library/busybox:latest"
    assert str(ref) == "docker-archive:/p/a.tar:docker.io/library/busybox:latest"  # as c/image prints it
    assert ref.policy_scopes() == [""]
    assert parse_image_name("docker-archive:/p/a.tar:@3").index == 3  # type: ignore[attr-defined]
    assert parse_image_name("docker-archive:/p/a.tar").docker_reference() is None
    for bad in ("docker-archive::x", "docker-archive:/p:@x", f"docker-archive:/p:a@sha256:{'0' * 64}"):
        with pytest.raises(InvalidReference):
            parse_image_name(bad)
    with pytest.raises(InvalidReference):
        parse_image_name("docker-archive:/p/a.tar:@0").open_destination(SystemContext())
    assert not os.path.exists("/p/a.tar")


def _write_tar(path: Path, entries: dict[str, object]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, content in entries.items():
            info = tarfile.TarInfo(name)
            if isinstance(content, tuple):
                info.type, info.linkname = tarfile.SYMTYPE, content[1]
                tar.addfile(info)
            else:
                info.size = len(content)  # type: ignore[arg-type]
                tar.addfile(info, io.BytesIO(content))  # type: ignore[arg-type]


def test_docker_save_layouts_old_and_new(tmp_path: Path) -> None:
    """`docker save` before 25 keeps layers at <id>/layer.tar; from 25 at blobs/sha256/<hex> (an OCI layout)."""
    random_image(tmp_path / "src", "v1", n_layers=2)
    skopeo("copy", "-q", f"oci:{tmp_path}/src:v1", f"docker-archive:{tmp_path}/c.tar")
    entries = _entries(tmp_path / "c.tar")
    want = skopeo("inspect", "--raw", f"docker-archive:{tmp_path}/c.tar").stdout.encode()
    item = json.loads(entries["manifest.json"])[0]  # type: ignore[arg-type]
    old = {f"id{i}/layer.tar": entries[p] for i, p in enumerate(item["Layers"])}
    old[item["Config"]] = entries[item["Config"]]
    old["manifest.json"] = json.dumps([{**item, "Layers": [f"id{i}/layer.tar" for i in range(2)]}]).encode()
    new = {f"blobs/sha256/{p[:-4]}": entries[p] for p in item["Layers"]}
    new[f"blobs/sha256/{item['Config'][:-5]}"] = entries[item["Config"]]
    new["manifest.json"] = json.dumps([{**item, "Config": f"blobs/sha256/{item['Config'][:-5]}",
                                        "Layers": [f"blobs/sha256/{p[:-4]}" for p in item["Layers"]]}]).encode()
    for name, content in (("old.tar", old), ("new.tar", new)):
        _write_tar(tmp_path / name, content)
        assert _raw_manifest(f"docker-archive:{tmp_path}/{name}") == want
        assert skopeo("inspect", "--raw", f"docker-archive:{tmp_path}/{name}").stdout.encode() == want
        _copy(f"docker-archive:{tmp_path}/{name}", f"docker-archive:{tmp_path}/re-{name}")
        assert _entries(tmp_path / f"re-{name}") == entries


@pytest.mark.parametrize("link", ["../../etc/passwd", "/etc/passwd", "loop"])
def test_links_leaving_the_archive_are_refused(tmp_path: Path, link: str) -> None:
    random_image(tmp_path / "src", "v1", n_layers=1)
    skopeo("copy", "-q", f"oci:{tmp_path}/src:v1", f"docker-archive:{tmp_path}/c.tar")
    entries = _entries(tmp_path / "c.tar")
    item = json.loads(entries["manifest.json"])[0]  # type: ignore[arg-type]
    entries["x/layer.tar"] = ("link", link if link != "loop" else "layer.tar")
    entries["manifest.json"] = json.dumps([{**item, "Layers": ["x/layer.tar"]}]).encode()
    _write_tar(tmp_path / "bad.tar", entries)
    with pytest.raises(LayoutError):
        parse_image_name(f"docker-archive:{tmp_path}/bad.tar").open_source(SystemContext())
    one_line_error(imagetool("inspect", f"docker-archive:{tmp_path}/bad.tar", check=False))
