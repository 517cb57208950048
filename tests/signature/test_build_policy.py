"""`imagetool build` judges a base image by the trust policy before pulling it into the local store."""

from __future__ import annotations

import json
from pathlib import Path

from tests.lib.cli import imagetool, one_line_error
from tests.lib.images import random_image
from tests.lib.registry import Registry
from tests.signature.conftest import write_policy
from tests.signature.test_registry import registries_d
from tests.signature.test_sigstore import make_keys


def local_names() -> str:
    return imagetool("images").stdout


def test_build_from_evaluates_policy(plain_registry: Registry, registry_env: None, tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    random_image(layout, "v1", n_layers=1, size=512)
    private, public, pass_file = make_keys(tmp_path)
    conf = registries_d(tmp_path, {"use-sigstore-attachments": True})
    signed = f"{plain_registry.host}/build-policy/signed:v1"
    unsigned = f"{plain_registry.host}/build-policy/unsigned:v1"
    imagetool("--insecure-policy", "--registries.d", conf, "copy", "--dest-tls-verify=false",
              "--sign-by-sigstore-private-key", str(private), "--sign-passphrase-file", str(pass_file),
              f"oci:{layout}:v1", f"docker://{signed}")
    imagetool("--insecure-policy", "copy", "--dest-tls-verify=false", f"oci:{layout}:v1", f"docker://{unsigned}")
    policy = write_policy(tmp_path / "policy.json", [{"type": "reject"}], {"docker": {
        f"{plain_registry.host}/build-policy": [{"type": "sigstoreSigned", "keyPath": str(public)}]}})
    context = tmp_path / "context"
    context.mkdir()

    def build(base: str, tag: str, check: bool = True):  # type: ignore[no-untyped-def]
        (context / "Dockerfile").write_text(f"FROM {base}\nLABEL checked=yes\n")
        return imagetool("--policy", policy, "--registries.d", conf, "build", "--tls-verify=false", "-t", tag,
                         str(context), check=check)

    bad = build(unsigned, "localhost/from-unsigned:1", check=False)
    assert "no sigstore signature" in one_line_error(bad)
    assert "build-policy/unsigned" not in local_names()
    # the policy's default rejects a base image no scope names
    other = f"{plain_registry.host}/elsewhere/base:v1"
    imagetool("--insecure-policy", "copy", "--dest-tls-verify=false", f"oci:{layout}:v1", f"docker://{other}")
    bad = build(other, "localhost/from-elsewhere:1", check=False)
    assert "rejects every image" in one_line_error(bad)
    assert "elsewhere/base" not in local_names()

    build(signed, "localhost/from-signed:1")
    names = local_names()
    assert "build-policy/signed" in names and "localhost/from-signed" in names
    config = json.loads(imagetool("inspect", "--config", "localhost/from-signed:1").stdout)
    assert config["config"]["Labels"]["checked"] == "yes"


def test_build_push_signs(plain_registry: Registry, registry_env: None, tmp_path: Path) -> None:
    private, public, pass_file = make_keys(tmp_path)
    conf = registries_d(tmp_path, {"use-sigstore-attachments": True})
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\nLABEL signed=yes\n")
    dest = f"docker://{plain_registry.host}/built/signed:v1"
    sign = ["--sign-by-sigstore-private-key", str(private), "--sign-passphrase-file", str(pass_file)]
    alone = imagetool("--registries.d", conf, "build", *sign, str(context), check=False)
    assert alone.returncode == 2 and "--push or -t TRANSPORT:NAME" in one_line_error(alone)
    imagetool("--insecure-policy", "--registries.d", conf, "build", "-q", "--tls-verify=false", *sign, "--push", dest,
              str(context))
    policy = write_policy(tmp_path / "policy.json", [{"type": "sigstoreSigned", "keyPath": str(public)}])
    ok = imagetool("--policy", policy, "--registries.d", conf, "verify", "--tls-verify=false", dest)
    assert "sigstoreSigned" in ok.stdout
