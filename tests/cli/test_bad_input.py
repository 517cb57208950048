"""Bad input: one line on stderr, a non-zero exit, and the destination unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.lib.cli import imagetool, one_line_error
from tests.lib.images import random_image


@pytest.mark.parametrize("args,expect", [
    (["copy", "oci:", "oci:/tmp/x"], "has no path"),
    (["copy", "localhost/UPPER Case", "oci:/tmp/x"], "white space"),
    (["copy", "bogus:/x", "oci:/tmp/x"], "unknown transport"),
    (["inspect", "localhost/app:-bad"], "invalid tag"),
    (["inspect", "foo@sha256:123"], "malformed sha256 digest"),
    (["copy", "--format", "v3", "a", "b"], "Invalid value"),
])
def test_malformed_input(args: list[str], expect: str) -> None:
    assert expect in one_line_error(imagetool(*args, check=False))


def test_missing_layout_and_unknown_media_type(tmp_path: Path) -> None:
    assert "no such OCI layout" in one_line_error(
        imagetool("copy", f"oci:{tmp_path}/none:x", f"oci:{tmp_path}/dst:x", check=False))
    assert not (tmp_path / "dst").exists()
    desc = random_image(tmp_path / "src", "v1")
    blob = tmp_path / "src" / "blobs" / "sha256" / desc.digest.hex
    doc = json.loads(blob.read_bytes())
    doc["mediaType"] = "application/vnd.example.weird+json"
    blob.write_text(json.dumps(doc))
    index = tmp_path / "src" / "index.json"
    index_doc = json.loads(index.read_text())
    from imagetool.digest import Digest

    index_doc["manifests"][0]["digest"] = str(Digest.of(blob.read_bytes()))
    index_doc["manifests"][0]["size"] = blob.stat().st_size
    index_doc["manifests"][0]["mediaType"] = "application/vnd.example.weird+json"
    blob.rename(blob.parent / Digest.of(blob.read_bytes()).hex)
    index.write_text(json.dumps(index_doc))
    random_image(tmp_path / "dst", "keep", seed=3)
    before = (tmp_path / "dst" / "index.json").read_bytes()
    line = one_line_error(imagetool("copy", f"oci:{tmp_path}/src:v1", f"oci:{tmp_path}/dst:new", check=False))
    assert "unsupported manifest media type" in line
    assert (tmp_path / "dst" / "index.json").read_bytes() == before


def test_corrupt_index_json(tmp_path: Path) -> None:
    random_image(tmp_path / "src", "v1")
    (tmp_path / "src" / "index.json").write_text("{not json")
    assert "index.json" in one_line_error(imagetool("inspect", f"oci:{tmp_path}/src:v1", check=False))


def test_no_traceback_for_unwritable_destination(tmp_path: Path) -> None:
    random_image(tmp_path / "src", "v1")
    (tmp_path / "file").write_text("x")
    line = one_line_error(imagetool("copy", f"oci:{tmp_path}/src:v1", f"oci:{tmp_path}/file:v1", check=False))
    assert "not a directory" in line


def test_schema1_source_is_refused_in_one_line(tmp_path: Path) -> None:
    src = tmp_path / "s1"
    src.mkdir()
    (src / "version").write_text("Directory Transport Version: 1.1\n")
    (src / "manifest.json").write_text(json.dumps({
        "schemaVersion": 1, "name": "library/x", "tag": "latest", "architecture": "amd64",
        "fsLayers": [{"blobSum": "sha256:" + "a" * 64}], "history": [{"v1Compatibility": "{}"}]}))
    random_image(tmp_path / "dst", "keep", seed=3)
    before = (tmp_path / "dst" / "index.json").read_bytes()
    for args in (["copy", f"dir:{src}", f"oci:{tmp_path}/dst:new"], ["inspect", f"dir:{src}"]):
        line = one_line_error(imagetool(*args, check=False))
        assert "schema 1" in line, args
    assert (tmp_path / "dst" / "index.json").read_bytes() == before
    # --raw only prints the bytes, as skopeo does
    assert imagetool("inspect", "--raw", f"dir:{src}").stdout == (src / "manifest.json").read_text()


def test_debug_is_only_the_global_option() -> None:
    """`--debug` after the command belongs to the container's program; only the global flag shows tracebacks."""
    theirs = imagetool("run", "--rm", "--pull", "never", "localhost/no-such-image", "prog", "--debug", check=False)
    assert "no-such-image" in one_line_error(theirs)
    ours = imagetool("--debug", "run", "--rm", "--pull", "never", "localhost/no-such-image", "prog", check=False)
    assert ours.returncode != 0 and "Traceback" in ours.stderr
