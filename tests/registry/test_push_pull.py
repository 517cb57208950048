"""`imagetool push` and `pull`, buildah's verbs: a bare name means a registry, the local store is the other end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.lib.cli import imagetool, one_line_error
from tests.lib.images import random_image, two_platform_index
from tests.lib.registry import Registry

pytestmark = pytest.mark.usefixtures("registry_env")


def _names() -> list[str]:
    return sorted(n for image in json.loads(imagetool("images", "--json").stdout) for n in image["names"] or [])


def test_push_then_pull(plain_registry: Registry, local_store: Path, tmp_path: Path) -> None:
    reg = plain_registry
    desc = random_image(tmp_path / "src", "v1", n_layers=2, seed=71)
    imagetool("copy", "-q", f"oci:{tmp_path}/src:v1", "localhost/app:1")
    # DESTINATION without a transport is a registry; without DESTINATION, the image's own name
    imagetool("push", "-q", "--tls-verify=false", "--digestfile", str(tmp_path / "digest"), "localhost/app:1",
              f"{reg.host}/pushed/app:1")
    assert (tmp_path / "digest").read_text() == str(desc.digest)
    assert reg.raw_get("/v2/pushed/app/manifests/1").status_code == 200
    imagetool("tag", "localhost/app:1", f"{reg.host}/pushed/app:2")
    imagetool("push", "-q", "--tls-verify=false", f"{reg.host}/pushed/app:2")
    assert reg.raw_get("/v2/pushed/app/manifests/2").status_code == 200
    imagetool("rmi", "localhost/app:1", f"{reg.host}/pushed/app:2")
    assert _names() == []

    image_id = imagetool("pull", "-q", "--tls-verify=false", f"{reg.host}/pushed/app:1").stdout.strip()
    assert _names() == [f"{reg.host}/pushed/app:1"]
    assert imagetool("inspect", "-f", "{{.Digest}}", f"{reg.host}/pushed/app:1").stdout.strip() == str(desc.digest)
    assert image_id == imagetool("images", "-q", "--no-trunc").stdout.strip()
    # the default policy (missing) does not ask the registry again; always does
    imagetool("delete", "--tls-verify=false", f"docker://{reg.host}/pushed/app:1")
    assert imagetool("pull", "-q", "--tls-verify=false", f"{reg.host}/pushed/app:1").stdout.strip() == image_id
    again = imagetool("pull", "-q", "--policy", "always", "--tls-verify=false", f"{reg.host}/pushed/app:1",
                      check=False)
    assert again.returncode != 0 and "manifest unknown" in one_line_error(again).lower()
    never = imagetool("pull", "--policy", "never", f"{reg.host}/pushed/other:1", check=False)
    assert never.returncode != 0 and "pull policy never" in one_line_error(never)


def test_pull_all_tags_and_a_platform(plain_registry: Registry, local_store: Path, tmp_path: Path) -> None:
    reg = plain_registry
    for tag, seed in (("a", 81), ("b", 82)):
        random_image(tmp_path / tag, tag, n_layers=1, seed=seed)
        imagetool("copy", "-q", "--dest-tls-verify=false", f"oci:{tmp_path / tag}:{tag}",
                  f"docker://{reg.host}/many/app:{tag}")
    ids = imagetool("pull", "-q", "-a", "--tls-verify=false", f"{reg.host}/many/app").stdout.split()
    assert len(set(ids)) == 2
    assert _names() == [f"{reg.host}/many/app:a", f"{reg.host}/many/app:b"]
    index = two_platform_index(tmp_path / "multi", "m")
    imagetool("copy", "-q", "--all", "--dest-tls-verify=false", f"oci:{tmp_path / 'multi'}:m",
              f"docker://{reg.host}/multi/app:m")
    imagetool("pull", "-q", "--platform", "linux/arm64/v8", "--tls-verify=false", f"{reg.host}/multi/app:m")
    pulled = imagetool("inspect", "-f", "{{.Digest}}", f"{reg.host}/multi/app:m").stdout.strip()
    assert pulled == str(index.manifests[1].digest)
