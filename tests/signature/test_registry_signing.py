"""Signing on copy to a real registry: skopeo reads our lookaside signatures; attachments are cosign's layout."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from imagetool.digest import Digest
from tests.lib.cli import imagetool, one_line_error, tool
from tests.lib.gpg import GPGHome
from tests.lib.images import random_image
from tests.lib.registry import Registry
from tests.signature.conftest import write_policy
from tests.signature.test_registry import registries_d
from tests.signature.test_sigstore import check_cosign_signature, make_keys


def test_skopeo_verifies_lookaside_signatures_we_made(plain_registry: Registry, registry_env: None, tmp_path: Path,
                                                      gnupg: GPGHome, other_gpg: GPGHome) -> None:
    layout = tmp_path / "layout"
    random_image(layout, "v1", n_layers=2, size=1024)
    sigs = tmp_path / "sigstore"
    conf = registries_d(tmp_path, {"lookaside": f"file://{sigs}"}, scope=f"{plain_registry.host}/signed")
    dest = f"docker://{plain_registry.host}/signed/gpg:v1"
    imagetool("--insecure-policy", "--registries.d", conf, "copy", "--dest-tls-verify=false", "--sign-by",
              gnupg.fingerprint, f"oci:{layout}:v1", dest)
    manifest = plain_registry.raw_get("/v2/signed/gpg/manifests/v1").content
    sig = sigs / "signed" / f"gpg@sha256={Digest.of(manifest).hex}" / "signature-1"  # containers/image layout
    assert sig.exists()
    for home, should_pass in ((gnupg, True), (other_gpg, False)):
        key = tmp_path / f"key-{should_pass}.gpg"
        key.write_bytes(home.export(home.fingerprint))
        policy = write_policy(tmp_path / f"policy-{should_pass}.json", [{"type": "reject"}], {"docker": {
            f"{plain_registry.host}/signed": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": str(key)}]}})
        out = tool(["skopeo", "--policy", policy, "--registries.d", conf, "copy", "--src-tls-verify=false", dest,
                    f"dir:{tmp_path / f'out-{should_pass}'}"], check=False, env={**os.environ, **gnupg.env()})
        assert (out.returncode == 0) is should_pass, out.stderr
    # imagetool agrees, and refuses a copy (writing nothing) when the key is not trusted
    ok = imagetool("--policy", str(tmp_path / "policy-True.json"), "--registries.d", conf, "verify",
                   "--tls-verify=false", dest)
    assert gnupg.fingerprint in ok.stdout
    bad = imagetool("--policy", str(tmp_path / "policy-False.json"), "--registries.d", conf, "copy",
                    "--src-tls-verify=false", "--dest-tls-verify=false", dest,
                    f"docker://{plain_registry.host}/signed/never:v1", check=False)
    assert "untrusted key" in one_line_error(bad)
    assert plain_registry.raw_get("/v2/signed/never/manifests/v1").status_code == 404


def test_sigstore_attachment_at_registry(plain_registry: Registry, registry_env: None, tmp_path: Path) -> None:
    private, public, pass_file = make_keys(tmp_path)
    layout = tmp_path / "layout"
    random_image(layout, "v1", n_layers=1, size=1024)
    dest = f"docker://{plain_registry.host}/signed/cosign:v1"
    # attachments are used only where registries.d enables them: otherwise the copy is refused unnamed
    bad = imagetool("--insecure-policy", "--registries.d", registries_d(tmp_path / "none", {}), "copy",
                    "--dest-tls-verify=false", "--sign-by-sigstore-private-key", str(private),
                    "--sign-passphrase-file", str(pass_file), f"oci:{layout}:v1", dest, check=False)
    assert "use-sigstore-attachments" in one_line_error(bad)
    assert plain_registry.raw_get("/v2/signed/cosign/manifests/v1").status_code == 404
    conf = registries_d(tmp_path, {"use-sigstore-attachments": True})
    imagetool("--insecure-policy", "--registries.d", conf, "copy", "--dest-tls-verify=false",
              "--sign-by-sigstore-private-key", str(private), "--sign-passphrase-file", str(pass_file),
              f"oci:{layout}:v1", dest)
    manifest = plain_registry.raw_get("/v2/signed/cosign/manifests/v1").content
    digest = Digest.of(manifest)
    # cosign's layout, read with plain HTTP: an OCI manifest at sha256-<hex>.sig, one payload layer
    att = plain_registry.raw_get(f"/v2/signed/cosign/manifests/sha256-{digest.hex}.sig").json()
    [layer] = att["layers"]
    assert layer["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
    payload = plain_registry.raw_get(f"/v2/signed/cosign/blobs/{layer['digest']}").content
    envelope = b"\x00sigstore-json\n" + json.dumps({
        "mimeType": layer["mediaType"], "payload": base64.b64encode(payload).decode(),
        "annotations": layer["annotations"]}).encode()
    check_cosign_signature(envelope, public.read_bytes(), manifest, f"{plain_registry.host}/signed/cosign:v1")
    # the policy accepts it from the registry; a signed copy elsewhere keeps the signature
    policy = write_policy(tmp_path / "policy.json", [{"type": "sigstoreSigned", "keyPath": str(public)}])
    ok = imagetool("--policy", policy, "--registries.d", conf, "verify", "--tls-verify=false", dest)
    assert "sigstoreSigned" in ok.stdout
    out = tmp_path / "copied"
    imagetool("--policy", policy, "--registries.d", conf, "copy", "--src-tls-verify=false", dest, f"dir:{out}")
    check_cosign_signature((out / "signature-1").read_bytes(), public.read_bytes(), manifest,
                           f"{plain_registry.host}/signed/cosign:v1")
    # signing again adds a second layer and keeps the first
    imagetool("--insecure-policy", "--registries.d", conf, "copy", "--dest-tls-verify=false",
              "--sign-by-sigstore-private-key", str(private), "--sign-passphrase-file", str(pass_file),
              "--sign-identity", "example.com/other:1", f"oci:{layout}:v1", dest)
    att = plain_registry.raw_get(f"/v2/signed/cosign/manifests/sha256-{digest.hex}.sig").json()
    assert len(att["layers"]) == 2


def test_sync_signs_and_dry_run_copies_nothing(plain_registry: Registry, registry_env: None,
                                              tmp_path: Path) -> None:
    private, public, pass_file = make_keys(tmp_path)
    random_image(tmp_path / "layout", "v1", n_layers=1, size=1024)
    imagetool("copy", "-q", "--dest-tls-verify=false", f"oci:{tmp_path}/layout:v1",
              f"docker://{plain_registry.host}/tosync/app:v1")
    source = f"{plain_registry.host}/tosync/app"
    dry = imagetool("sync", "--dry-run", "--src", "docker", "--dest", "dir", "--src-tls-verify=false",
                    source, str(tmp_path / "dry"))
    assert f'from="docker://{source}:v1" to="dir:{tmp_path / "dry" / "app"}:v1"' in dry.stderr
    assert not (tmp_path / "dry").exists()
    conf = registries_d(tmp_path, {"use-sigstore-attachments": True})
    imagetool("--insecure-policy", "--registries.d", conf, "sync", "-q", "--preserve-digests", "--src", "docker",
              "--dest", "docker", "--src-tls-verify=false", "--dest-tls-verify=false",
              "--sign-by-sigstore-private-key", str(private), "--sign-passphrase-file", str(pass_file), source,
              f"{plain_registry.host}/mirror")
    mirrored = plain_registry.raw_get("/v2/mirror/app/manifests/v1").content
    assert mirrored == plain_registry.raw_get("/v2/tosync/app/manifests/v1").content
    policy = write_policy(tmp_path / "policy.json", [{"type": "sigstoreSigned", "keyPath": str(public)}])
    ok = imagetool("--policy", policy, "--registries.d", conf, "verify", "--tls-verify=false",
                   f"docker://{plain_registry.host}/mirror/app:v1")
    assert "sigstoreSigned" in ok.stdout
    unsigned = imagetool("--policy", policy, "--registries.d", conf, "verify", "--tls-verify=false",
                         f"docker://{source}:v1", check=False)
    assert unsigned.returncode != 0
