"""Flags and commands skopeo 1.9 has: `help`, "did you mean" for a mistyped command, --dest-precompute-digests,
--dest-oci-accept-uncompressed-layers, and --daemon-host refused by name (imagetool has no docker-daemon:)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from imagetool import media
from tests.lib.cli import imagetool, one_line_error, skopeo
from tests.lib.images import random_image
from tests.lib.registry import Registry


def test_help_command_prints_what_help_flags_print() -> None:
    assert imagetool("help").stdout == imagetool("--help").stdout
    assert imagetool("help", "copy").stdout == imagetool("copy", "--help").stdout
    assert imagetool("help", "manifest", "create").stdout == imagetool("manifest", "create", "--help").stdout
    assert "help" in imagetool("--help").stdout
    bad = imagetool("help", "cpoy", check=False)
    assert bad.returncode == 2 and "unknown help topic" in one_line_error(bad)


@pytest.mark.parametrize("typo, meant", [("cpoy", "copy"), ("inspcet", "inspect"), ("lsit-tags", "list-tags"),
                                         ("sycn", "sync")])
def test_a_mistyped_command_gets_a_suggestion(typo: str, meant: str) -> None:
    ours = imagetool(typo, "a", "b", check=False)
    assert ours.returncode == 2
    assert f'did you mean "{meant}"' in one_line_error(ours)
    theirs = skopeo(typo, check=False)
    assert theirs.returncode != 0 and f"Did you mean this?\\n\\t{meant}" in theirs.stderr
    far = imagetool("zzzzqq", check=False)
    assert far.returncode == 2 and "did you mean" not in one_line_error(far)


@pytest.mark.parametrize("argv", [["copy", "--src-daemon-host", "unix:///x", "dir:/nonexistent", "dir:/y"],
                                  ["copy", "--dest-daemon-host", "tcp://h:2375", "dir:/nonexistent", "dir:/y"],
                                  ["inspect", "--daemon-host", "unix:///x", "dir:/nonexistent"],
                                  ["delete", "--daemon-host", "unix:///x", "dir:/nonexistent"]])
def test_daemon_host_is_refused_by_name(argv: list[str]) -> None:
    proc = imagetool(*argv, check=False)
    line = one_line_error(proc)
    assert proc.returncode == 2 and "daemon-host" in line and "docker-daemon: transport is not supported" in line


def _layer_types(layout: Path, name: str) -> list[str]:
    raw = imagetool("inspect", "--raw", f"oci:{layout}:{name}").stdout
    return [layer["mediaType"] for layer in json.loads(raw)["layers"]]


def test_oci_accept_uncompressed_layers(tmp_path: Path) -> None:
    """Without the flag an oci: destination compresses plain layers (as skopeo does); with it they stay plain,
    and skopeo writes the very same manifest."""
    random_image(tmp_path / "src", "v1", n_layers=2, compression=None)
    src = f"oci:{tmp_path}/src:v1"
    imagetool("copy", "-q", src, f"oci:{tmp_path}/default:v1")
    assert _layer_types(tmp_path / "default", "v1") == [media.OCI_LAYER_GZIP] * 2
    imagetool("copy", "-q", "--dest-oci-accept-uncompressed-layers", src, f"oci:{tmp_path}/plain:v1")
    assert _layer_types(tmp_path / "plain", "v1") == [media.OCI_LAYER] * 2
    skopeo("copy", "-q", "--dest-oci-accept-uncompressed-layers", src, f"oci:{tmp_path}/theirs:v1")
    ours = imagetool("inspect", "--format", "{{.Digest}}", f"oci:{tmp_path}/plain:v1").stdout
    assert ours == imagetool("inspect", "--format", "{{.Digest}}", src).stdout
    assert ours == skopeo("inspect", "--format", "{{.Digest}}", f"oci:{tmp_path}/theirs:v1").stdout


def _layer_uploads(reg: Registry, repo: str) -> int:
    return len(re.findall(rf"POST /v2/{re.escape(repo)}/blobs/uploads/", reg.log()))


def test_precompute_digests_skips_layers_the_registry_has(plain_registry: Registry, registry_env: None,
                                                          tmp_path: Path) -> None:
    """Recompressed layers have no digest until written: with --dest-precompute-digests they are hashed first
    and not uploaded again when the registry has them; without it every push uploads them."""
    reg = plain_registry
    random_image(tmp_path / "src", "v1", n_layers=3, compression=None)
    src = f"oci:{tmp_path}/src:v1"
    push = ["copy", "-q", "--dest-tls-verify=false", "--dest-compress-format", "gzip", src]
    imagetool(*push, reg.ref("precompute/app:a"))
    before = _layer_uploads(reg, "precompute/app")
    assert before >= 3
    imagetool(*push, reg.ref("precompute/app:b"))
    again = _layer_uploads(reg, "precompute/app")
    assert again - before >= 3  # uploaded again, only to find the registry had them
    imagetool(*push[:2], "--dest-precompute-digests", *push[2:], reg.ref("precompute/app:c"))
    assert _layer_uploads(reg, "precompute/app") == again
    digests = {imagetool("inspect", "--tls-verify=false", "--format", "{{.Digest}}",
                         reg.ref(f"precompute/app:{t}")).stdout for t in "abc"}
    assert len(digests) == 1
    imagetool("copy", "-q", "--src-tls-verify=false", reg.ref("precompute/app:c"), f"dir:{tmp_path}/back")
