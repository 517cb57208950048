"""oci-archive: — a tar of an OCI layout: extracted safely, written atomically, read by skopeo."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

import pytest

from imagetool.copy import CopyOptions, copy_image
from imagetool.digest import Digest
from imagetool.errors import LayoutError, ManifestUnknown, UnsafeContent
from imagetool.transports import SystemContext, parse_image_name
from tests.lib.cli import imagetool, one_line_error, skopeo
from tests.lib.images import random_image


def _copy(src: str, dst: str, **kw: object) -> Digest:
    return copy_image(parse_image_name(src), parse_image_name(dst), CopyOptions(**kw)).digest  # type: ignore


def _archive_of(layout: Path, out: Path, extra: list[tarfile.TarInfo] | None = None, gz: bool = False) -> None:
    with tarfile.open(out, "w:gz" if gz else "w") as tar:
        for name in ("oci-layout", "index.json", "blobs"):
            tar.add(layout / name, arcname=name)
        for info in extra or []:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isreg() else None)


def test_round_trip_keeps_digest_and_skopeo_reads_it(tmp_path: Path) -> None:
    desc = random_image(tmp_path / "src", "v1", n_layers=2)
    assert _copy(f"oci:{tmp_path}/src:v1", f"oci-archive:{tmp_path}/a.tar:v1") == desc.digest
    inspected = skopeo("inspect", f"oci-archive:{tmp_path}/a.tar:v1").stdout
    assert str(desc.digest) in inspected
    assert _copy(f"oci-archive:{tmp_path}/a.tar:v1", f"oci:{tmp_path}/back:v1") == desc.digest
    names = tarfile.open(tmp_path / "a.tar").getnames()
    assert "oci-layout" in names and "index.json" in names
    assert not [n for n in names if ".lock" in n or ".tmp-" in n]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_source_temp_dir_is_removed_after_use(tmp_path: Path) -> None:
    random_image(tmp_path / "src", "v1")
    _copy(f"oci:{tmp_path}/src:v1", f"oci-archive:{tmp_path}/a.tar")
    (tmp_path / "tmp").mkdir()
    ctx = SystemContext(tmpdir=str(tmp_path / "tmp"))
    src = parse_image_name(f"oci-archive:{tmp_path}/a.tar").open_source(ctx)
    assert len(os.listdir(tmp_path / "tmp")) == 1
    src.close()
    assert os.listdir(tmp_path / "tmp") == []
    with pytest.raises(ManifestUnknown):
        parse_image_name(f"oci-archive:{tmp_path}/a.tar:nosuch").open_source(ctx)
    assert os.listdir(tmp_path / "tmp") == []


def test_gzip_compressed_archive_is_read(tmp_path: Path) -> None:
    desc = random_image(tmp_path / "src", "v1")
    _archive_of(tmp_path / "src", tmp_path / "a.tar.gz", gz=True)
    assert _copy(f"oci-archive:{tmp_path}/a.tar.gz:v1", f"oci:{tmp_path}/out:v1") == desc.digest


@pytest.mark.parametrize("kind", ["escape", "absolute", "symlink", "hardlink", "device"])
def test_hostile_entries_are_refused(tmp_path: Path, kind: str) -> None:
    random_image(tmp_path / "src", "v1")
    info = tarfile.TarInfo({"escape": "blobs/../../evil", "absolute": "/tmp/evil"}.get(kind, "blobs/evil"))
    if kind in ("escape", "absolute"):
        info.size = 1
    elif kind == "symlink":
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    elif kind == "hardlink":
        info.type, info.linkname = tarfile.LNKTYPE, "index.json"
    else:
        info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
    _archive_of(tmp_path / "src", tmp_path / "bad.tar", [info])
    (tmp_path / "tmp").mkdir()
    with pytest.raises(UnsafeContent):
        parse_image_name(f"oci-archive:{tmp_path}/bad.tar").open_source(SystemContext(tmpdir=str(tmp_path / "tmp")))
    assert os.listdir(tmp_path / "tmp") == []
    assert not (tmp_path / "evil").exists()
    line = one_line_error(imagetool("copy", f"oci-archive:{tmp_path}/bad.tar", f"oci:{tmp_path}/o:v1", check=False))
    assert "bad.tar" in line or "archive" in line
    assert not (tmp_path / "o").exists()


def test_truncated_archive_is_one_line_and_destination_unchanged(tmp_path: Path) -> None:
    random_image(tmp_path / "src", "v1", size=300_000, n_layers=2)
    _copy(f"oci:{tmp_path}/src:v1", f"oci-archive:{tmp_path}/a.tar:v1")
    data = (tmp_path / "a.tar").read_bytes()
    random_image(tmp_path / "dst", "keep", seed=9)
    index_before = (tmp_path / "dst" / "index.json").read_bytes()
    members = tarfile.open(tmp_path / "a.tar").getmembers()
    big = max(members, key=lambda m: m.size)
    last = members[-1]
    # inside the biggest blob, inside a header, and inside the last entry
    for cut in (big.offset_data + big.size // 2, big.offset + 100, last.offset_data + last.size - 1):
        (tmp_path / "t.tar").write_bytes(data[:cut])
        proc = imagetool("copy", f"oci-archive:{tmp_path}/t.tar:v1", f"oci:{tmp_path}/dst:v1", check=False)
        assert "t.tar" in one_line_error(proc)
        assert (tmp_path / "dst" / "index.json").read_bytes() == index_before
    with pytest.raises(LayoutError):
        (tmp_path / "g.tar").write_bytes(gzip.compress(data)[:5000])
        parse_image_name(f"oci-archive:{tmp_path}/g.tar").open_source(SystemContext())


def test_writing_replaces_the_whole_archive_like_skopeo(tmp_path: Path) -> None:
    random_image(tmp_path / "src", "one", seed=1)
    two = random_image(tmp_path / "src", "two", seed=2)
    _copy(f"oci:{tmp_path}/src:one", f"oci-archive:{tmp_path}/ours.tar:one")
    _copy(f"oci:{tmp_path}/src:two", f"oci-archive:{tmp_path}/ours.tar:two")
    skopeo("copy", "-q", f"oci:{tmp_path}/src:one", f"oci-archive:{tmp_path}/theirs.tar:one")
    skopeo("copy", "-q", f"oci:{tmp_path}/src:two", f"oci-archive:{tmp_path}/theirs.tar:two")
    for archive in ("ours.tar", "theirs.tar"):
        proc = skopeo("inspect", f"oci-archive:{tmp_path}/{archive}:one", check=False)
        assert proc.returncode != 0
        assert str(two.digest) in skopeo("inspect", f"oci-archive:{tmp_path}/{archive}:two").stdout


def test_missing_path_and_directory_destination(tmp_path: Path) -> None:
    line = one_line_error(imagetool("inspect", f"oci-archive:{tmp_path}/nope.tar", check=False))
    assert "nope.tar" in line
    random_image(tmp_path / "src", "v1")
    (tmp_path / "adir").mkdir()
    one_line_error(imagetool("copy", f"oci:{tmp_path}/src:v1", f"oci-archive:{tmp_path}/adir", check=False))
    assert os.listdir(tmp_path / "adir") == []


def test_reference_and_policy_scopes(tmp_path: Path) -> None:
    ref = parse_image_name(f"oci-archive:{tmp_path}/a.tar:v1")
    assert str(ref) == f"oci-archive:{tmp_path}/a.tar:v1"
    real = os.path.realpath(tmp_path / "a.tar")
    scopes = ref.policy_scopes()
    # as containers/image: the image name is not part of the scope, only the path and its parents
    assert scopes[:2] == [real, os.path.dirname(real)] and scopes[-1] == ""
    assert parse_image_name(f"oci-archive:{tmp_path}/a.tar").policy_scopes()[0] == real
