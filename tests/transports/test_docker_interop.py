"""skopeo reads what imagetool pushed, and imagetool reads what skopeo pushed (same registry, same bytes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagetool.store import refs
from imagetool.store.layout import LayoutStore
from tests.lib.cli import imagetool, skopeo
from tests.lib.images import busybox_image, random_image
from tests.lib.registry import Registry

pytestmark = pytest.mark.usefixtures("registry_env")


def test_skopeo_copies_what_imagetool_pushed(tls_registry: Registry, tmp_path: Path) -> None:
    reg = tls_registry
    desc = busybox_image(tmp_path / "src", "v1")
    imagetool("copy", "-q", *reg.tls_flags("dest-"), *reg.creds_flags("dest-"), f"oci:{tmp_path}/src:v1",
              reg.ref("interop/from-imagetool:v1"))
    skopeo("copy", "--src-cert-dir", str(reg.cert_dir), "--src-creds", reg.creds,
           reg.ref("interop/from-imagetool:v1"), f"oci:{tmp_path}/by-skopeo:v1")
    assert refs.resolve(LayoutStore.open(tmp_path / "by-skopeo"), "v1").digest == desc.digest
    info = json.loads(skopeo("inspect", "--cert-dir", str(reg.cert_dir), "--creds", reg.creds,
                             reg.ref("interop/from-imagetool:v1")).stdout)
    assert info["Digest"] == str(desc.digest)


def test_imagetool_copies_what_skopeo_pushed(token_registry: Registry, tmp_path: Path) -> None:
    reg = token_registry
    desc = random_image(tmp_path / "src", "v1", n_layers=2, size=150_000, seed=5)
    skopeo("copy", "--format", "v2s2", "--dest-tls-verify=false", "--dest-creds", reg.creds, f"oci:{tmp_path}/src:v1",
           reg.ref("interop/from-skopeo:v1"))
    imagetool("copy", "-q", "--src-tls-verify=false", *reg.creds_flags("src-"), reg.ref("interop/from-skopeo:v1"),
              "localhost/interop:v1")  # the local store keeps the manifest type (oci: would convert)
    got = json.loads(imagetool("inspect", "localhost/interop:v1").stdout)["Digest"]
    skopeo_digest = skopeo("inspect", "--tls-verify=false", "--creds", reg.creds, "--format", "{{.Digest}}",
                           reg.ref("interop/from-skopeo:v1")).stdout.strip()
    assert got == skopeo_digest
    assert got != str(desc.digest)  # skopeo converted it to Docker schema 2; imagetool kept those bytes
    raw = imagetool("inspect", "--raw", "localhost/interop:v1").stdout
    assert json.loads(raw)["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    # and the listing agrees with skopeo's
    ours = json.loads(imagetool("list-tags", "--tls-verify=false", *reg.creds_flags(),
                                reg.ref("interop/from-skopeo")).stdout)
    theirs = json.loads(skopeo("list-tags", "--tls-verify=false", "--creds", reg.creds,
                               reg.ref("interop/from-skopeo")).stdout)
    assert ours == theirs
