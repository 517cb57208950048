"""dir: — skopeo's directory format, written and read by imagetool (skopeo checks the bytes)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from imagetool import media
from imagetool.copy import CopyOptions, copy_image
from imagetool.descriptor import Descriptor, Platform
from imagetool.digest import Digest
from imagetool.errors import DigestMismatch, InvalidReference, LayoutError
from imagetool.manifest import Index
from imagetool.store import refs
from imagetool.store.layout import LayoutStore
from imagetool.transports import SystemContext, parse_image_name
from imagetool.transports.dir import VERSION
from tests.lib.cli import imagetool, one_line_error, skopeo
from tests.lib.images import random_image


def _copy(src: str, dst: str, **kw: object) -> Digest:
    return copy_image(parse_image_name(src), parse_image_name(dst), CopyOptions(**kw)).digest  # type: ignore


def _listing(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def test_layout_on_disk_is_skopeos(tmp_path: Path) -> None:
    desc = random_image(tmp_path / "src", "v1", n_layers=2)
    _copy(f"oci:{tmp_path}/src:v1", f"dir:{tmp_path}/ours")
    skopeo("copy", "-q", f"oci:{tmp_path}/src:v1", f"dir:{tmp_path}/theirs")
    assert _listing(tmp_path / "ours") == _listing(tmp_path / "theirs")
    assert (tmp_path / "ours" / "version").read_bytes() == VERSION
    assert Digest.of((tmp_path / "ours" / "manifest.json").read_bytes()) == desc.digest
    assert not [p for p in (tmp_path / "ours").iterdir() if p.name.startswith(".")]


def test_signatures_are_opaque_files_and_travel_between_dirs(tmp_path: Path) -> None:
    random_image(tmp_path / "src", "v1", n_layers=1)
    _copy(f"oci:{tmp_path}/src:v1", f"dir:{tmp_path}/a")
    (tmp_path / "a" / "signature-1").write_bytes(b"\x00first")
    (tmp_path / "a" / "signature-2").write_bytes(b"second\xff")
    src = parse_image_name(f"dir:{tmp_path}/a").open_source(SystemContext())
    assert src.get_signatures() == [b"\x00first", b"second\xff"]
    _copy(f"dir:{tmp_path}/a", f"dir:{tmp_path}/b")
    assert (tmp_path / "b" / "signature-1").read_bytes() == b"\x00first"
    assert (tmp_path / "b" / "signature-2").read_bytes() == b"second\xff"
    assert not (tmp_path / "b" / "signature-3").exists()
    # an OCI layout cannot hold them: the copy says so unless they are dropped
    line = one_line_error(imagetool("copy", "-q", f"dir:{tmp_path}/b", f"oci:{tmp_path}/o:v1", check=False))
    assert "signatures" in line
    imagetool("copy", "-q", "--remove-signatures", f"dir:{tmp_path}/b", f"oci:{tmp_path}/o:v1")


def test_existing_image_is_replaced_and_its_extra_files_removed(tmp_path: Path) -> None:
    random_image(tmp_path / "src", "one", n_layers=3, seed=1)
    two = random_image(tmp_path / "src", "two", n_layers=1, seed=2)
    _copy(f"oci:{tmp_path}/src:one", f"dir:{tmp_path}/d")
    (tmp_path / "d" / "signature-1").write_bytes(b"old")
    _copy(f"oci:{tmp_path}/src:two", f"dir:{tmp_path}/d")
    names = sorted(os.listdir(tmp_path / "d"))
    manifest = (tmp_path / "d" / "manifest.json").read_bytes()
    assert Digest.of(manifest) == two.digest
    assert len(names) == 4 and "signature-1" not in names  # version, manifest, config, one layer
    skopeo("inspect", f"dir:{tmp_path}/d")


def test_non_empty_foreign_directory_is_refused_untouched(tmp_path: Path) -> None:
    random_image(tmp_path / "src", "v1")
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "notes.txt").write_text("keep me")
    line = one_line_error(imagetool("copy", f"oci:{tmp_path}/src:v1", f"dir:{tmp_path}/home", check=False))
    assert "refusing" in line
    assert os.listdir(tmp_path / "home") == ["notes.txt"]


def test_failed_copy_leaves_the_previous_image_as_it_was(tmp_path: Path) -> None:
    random_image(tmp_path / "good", "v1", seed=1)
    _copy(f"oci:{tmp_path}/good:v1", f"dir:{tmp_path}/d")
    before = _listing(tmp_path / "d")
    bad = random_image(tmp_path / "bad", "v1", seed=5, n_layers=2, size=100_000)
    store = LayoutStore.open(tmp_path / "bad")
    manifest = LayoutStore.open(tmp_path / "bad").read_blob(bad.digest)
    layer = Digest.parse(__import__("json").loads(manifest)["layers"][1]["digest"])
    data = bytearray(store.blob_path(layer).read_bytes())
    data[-100] ^= 0xFF
    store.blob_path(layer).write_bytes(bytes(data))
    with pytest.raises(DigestMismatch):
        _copy(f"oci:{tmp_path}/bad:v1", f"dir:{tmp_path}/d")
    assert _listing(tmp_path / "d") == before
    with pytest.raises(DigestMismatch):
        _copy(f"oci:{tmp_path}/bad:v1", f"dir:{tmp_path}/new")
    assert not (tmp_path / "new").exists()


def test_index_with_all_instances_uses_instance_manifest_files(tmp_path: Path) -> None:
    a = random_image(tmp_path / "src", None, seed=1, n_layers=1)
    b = random_image(tmp_path / "src", None, seed=2, n_layers=1)
    store = LayoutStore.open(tmp_path / "src")
    index = Index.build(media.OCI_INDEX, [a.with_(platform=Platform("amd64", "linux"), annotations={}),
                                          b.with_(platform=Platform("arm64", "linux"), annotations={})])
    store.put_bytes(index.raw)
    store.update_index(lambda _: [refs.named(Descriptor(media.OCI_INDEX, index.digest, len(index.raw)), "m")])
    imagetool("copy", "-q", "--all", f"oci:{tmp_path}/src:m", f"dir:{tmp_path}/d")
    assert Digest.of((tmp_path / "d" / "manifest.json").read_bytes()) == index.digest
    for inst in (a, b):
        assert Digest.of((tmp_path / "d" / f"{inst.digest.hex}.manifest.json").read_bytes()) == inst.digest
    # an instance's signatures live in <hex>.signature-N and travel with it (0xa3: an OpenPGP packet, as skopeo
    # expects of a simple signature)
    (tmp_path / "d" / f"{b.digest.hex}.signature-1").write_bytes(b"\xa3 sig of b")
    src = parse_image_name(f"dir:{tmp_path}/d").open_source(SystemContext())
    assert src.get_signatures(b.digest) == [b"\xa3 sig of b"] and src.get_signatures(a.digest) == []
    imagetool("copy", "-q", "--all", f"dir:{tmp_path}/d", f"dir:{tmp_path}/d2")
    assert (tmp_path / "d2" / f"{b.digest.hex}.signature-1").read_bytes() == b"\xa3 sig of b"
    assert _listing(tmp_path / "d") == _listing(tmp_path / "d2")
    # skopeo reads the instance files we wrote, and we read skopeo's
    skopeo("copy", "-q", "--all", f"dir:{tmp_path}/d", f"dir:{tmp_path}/theirs")
    assert _listing(tmp_path / "d") == _listing(tmp_path / "theirs")
    imagetool("copy", "-q", "--all", "--remove-signatures", f"dir:{tmp_path}/theirs", f"oci:{tmp_path}/back:m")
    raw = imagetool("inspect", "--raw", f"oci:{tmp_path}/back:m").stdout.encode()
    assert Digest.of(raw) == index.digest


def test_references_and_policy_scopes(tmp_path: Path) -> None:
    ref = parse_image_name(f"dir:{tmp_path}/a/b")
    assert str(ref) == f"dir:{tmp_path}/a/b"
    scopes = ref.policy_scopes()
    assert scopes[0] == os.path.realpath(tmp_path / "a" / "b")
    assert scopes[1] == os.path.realpath(tmp_path / "a") and scopes[-1] == ""
    assert ref.docker_reference() is None
    with pytest.raises(InvalidReference):
        parse_image_name("dir:")
    with pytest.raises(LayoutError):
        ref.open_source(SystemContext())
