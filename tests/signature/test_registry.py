"""Signatures at a real registry: sigstore attachments (sha256-<hex>.sig) and lookaside storage."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

import pytest

from imagetool.digest import Digest
from imagetool.errors import PolicyRejected
from imagetool.signature.policy_eval import PolicyContext
from imagetool.transports import parse_image_name
from imagetool.transports import envelopes
from imagetool.transports.base import SystemContext
from tests.lib.cli import imagetool, one_line_error, tool
from tests.lib.gpg import GPGHome
from tests.lib.httpdir import serve_directory
from tests.lib.images import random_image
from tests.lib.registry import Registry
from tests.signature.conftest import FIXTURES, write_policy

SIGNED_HOST = "192.168.64.2:5000"
COSIGN_VECTORS = [
    ("dir-img-cosign-valid", "cosign-signed-single-sample", None, True),
    ("dir-img-cosign-valid-2", "cosign-signed-single-sample", None, True),
    ("dir-img-cosign-mixed", "cosign-signed-single-sample", None, True),
    ("dir-img-cosign-valid-with-tag", "skopeo-signed", "tag", True),
    ("dir-img-cosign-valid-with-tag", "skopeo-signed", "othertag", False),
    ("dir-img-cosign-modified-manifest", "cosign-signed-single-sample", None, False),
    ("dir-img-cosign-manifest-digest-error", "cosign-signed-single-sample", None, False),
    ("dir-img-cosign-other-attachment", "cosign-signed-single-sample", None, False),
]


def registries_d(tmp_path: Path, section: dict, scope: str | None = None) -> str:
    d = tmp_path / "registries.d"
    d.mkdir(parents=True, exist_ok=True)
    doc = {"docker": {scope: section}} if scope else {"default-docker": section}
    (d / "test.yaml").write_text(json.dumps(doc))  # JSON is YAML
    return str(d)


def push_attachment(reg: Registry, repo: str, manifest: bytes, envelope_files: list[Path]) -> Digest:
    """Push the vector's signatures as the attachment of `manifest` (which itself need not be stored)."""
    digest = Digest.of(manifest)
    ref = parse_image_name(f"docker://{reg.host}/{repo}@{digest}")
    ctx = SystemContext(tls_verify=False)
    src = ref.open_source(ctx)
    dst = ref.open_destination(ctx)
    sigs = [envelopes.parse(p.read_bytes()) for p in envelope_files]
    envelopes.write_attachments(digest, sigs, src.get_tagged_manifest,  # type: ignore[attr-defined]
                                dst.put_blob_bytes, dst.put_tagged_manifest)  # type: ignore[attr-defined]
    return digest


@pytest.mark.parametrize("name,repo,tag,accepted", COSIGN_VECTORS)
def test_cosign_vectors_as_attachments(plain_registry: Registry, registry_env: None, tmp_path: Path,
                                       name: str, repo: str, tag: str | None, accepted: bool) -> None:
    vector = FIXTURES / name
    manifest = (vector / "manifest.json").read_bytes()
    sig_files = sorted(vector.glob("signature-*"))
    digest = push_attachment(plain_registry, f"vectors/{name}", manifest, sig_files)
    # the attachment is an ordinary OCI image at the registry, one layer per signature
    raw = plain_registry.raw_get(f"/v2/vectors/{name}/manifests/{envelopes.attachment_tag(digest)}")
    assert raw.status_code == 200 and len(raw.json()["layers"]) == len(sig_files)
    # judged as the registry image, with the signed host remapped to the test registry
    policy = write_policy(tmp_path / "policy.json", [{
        "type": "sigstoreSigned", "keyPath": str(FIXTURES / "cosign.pub"),
        "signedIdentity": {"type": "remapIdentity", "prefix": f"{plain_registry.host}/vectors/{name}",
                           "signedPrefix": f"{SIGNED_HOST}/{repo}"}}])
    suffix = f":{tag}" if tag else f"@{digest}"
    ref = parse_image_name(f"docker://{plain_registry.host}/vectors/{name}{suffix}")
    src = ref.open_source(SystemContext(tls_verify=False))
    ctx = PolicyContext.load(policy, False)
    on = registries_d(tmp_path, {"use-sigstore-attachments": True})
    if accepted:
        assert "sigstoreSigned" in ctx.check(ref, src, manifest, on)
        # attachments are read only where registries.d enables them (as containers/image does)
        for off in (registries_d(tmp_path / "off", {"use-sigstore-attachments": False}),
                    registries_d(tmp_path / "unset", {})):
            with pytest.raises(PolicyRejected, match="no sigstore signature"):
                ctx.check(ref, src, manifest, off)
    else:
        with pytest.raises(PolicyRejected):
            ctx.check(ref, src, manifest, on)


def test_unknown_cosign_key_as_attachment(plain_registry: Registry, registry_env: None, tmp_path: Path) -> None:
    """unknown-cosign-key.signature, attached at the registry, is refused for cosign.pub (and cosign2.pub)."""
    manifest = (FIXTURES / "dir-img-cosign-valid" / "manifest.json").read_bytes()
    digest = push_attachment(plain_registry, "vectors/unknown-key", manifest,
                             [FIXTURES / "unknown-cosign-key.signature"])
    ref = parse_image_name(f"docker://{plain_registry.host}/vectors/unknown-key@{digest}")
    src = ref.open_source(SystemContext(tls_verify=False))
    on = registries_d(tmp_path, {"use-sigstore-attachments": True})
    for key in ("cosign.pub", "cosign2.pub"):
        policy = write_policy(tmp_path / f"{key}.json", [{
            "type": "sigstoreSigned", "keyPath": str(FIXTURES / key),
            "signedIdentity": {"type": "remapIdentity", "prefix": f"{plain_registry.host}/vectors/unknown-key",
                               "signedPrefix": f"{SIGNED_HOST}/cosign-signed-single-sample"}}])
        with pytest.raises(PolicyRejected, match="not made by a trusted key"):
            PolicyContext.load(policy, False).check(ref, src, manifest, on)


def test_attachments_accumulate(plain_registry: Registry, registry_env: None) -> None:
    """Adding signatures keeps what is attached already, and adding the same one again is a no-op."""
    valid = FIXTURES / "dir-img-cosign-valid-2"
    manifest = (valid / "manifest.json").read_bytes()
    push_attachment(plain_registry, "vectors/accumulate", manifest, [valid / "signature-1"])
    digest = push_attachment(plain_registry, "vectors/accumulate", manifest,
                             [valid / "signature-1", valid / "signature-2"])
    raw = plain_registry.raw_get(f"/v2/vectors/accumulate/manifests/{envelopes.attachment_tag(digest)}").json()
    assert len(raw["layers"]) == 2
    ref = parse_image_name(f"docker://{plain_registry.host}/vectors/accumulate@{digest}")
    src = ref.open_source(SystemContext(tls_verify=False))
    got = envelopes.source_attachments(src, digest)
    assert got is not None and sorted(envelopes.serialize(s) for s in got) == \
        sorted((valid / f"signature-{i}").read_bytes() for i in (1, 2))


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A static HTTP server on 127.0.0.1 for a lookaside directory (what a web server in front of it does)."""
    root = tmp_path / "lookaside"
    root.mkdir()
    with serve_directory(root) as url:
        yield root, url


def test_skopeo_lookaside_signatures_verified(plain_registry: Registry, registry_env: None, tmp_path: Path,
                                              gnupg: GPGHome, http_dir: tuple[Path, str]) -> None:
    """skopeo signs into file:// lookaside; imagetool verifies over file:// and over http://."""
    root, url = http_dir
    layout = tmp_path / "layout"
    random_image(layout, "v1", n_layers=1, size=512)
    dest = f"docker://{plain_registry.host}/lookaside/skopeo:v1"
    write_d = registries_d(tmp_path / "w", {"lookaside-staging": f"file://{root}", "lookaside": url},
                           scope=f"{plain_registry.host}/lookaside")
    tool(["skopeo", "--insecure-policy", "--registries.d", write_d, "copy", "--dest-tls-verify=false",
          "--sign-by", gnupg.fingerprint, f"oci:{layout}:v1", dest], env={**os.environ, **gnupg.env()})
    sigs = list(root.rglob("signature-1"))
    assert len(sigs) == 1 and "lookaside/skopeo@sha256=" in str(sigs[0])
    key = tmp_path / "key.gpg"
    key.write_bytes(gnupg.export(gnupg.fingerprint))
    policy = write_policy(tmp_path / "policy.json", [{"type": "reject"}], {"docker": {
        f"{plain_registry.host}/lookaside": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": str(key)}]}})
    ok = imagetool("verify", "--policy", policy, "--registries.d", write_d, "--tls-verify=false", dest)
    assert gnupg.fingerprint in ok.stdout and f"{plain_registry.host}/lookaside/skopeo:v1" in ok.stdout
    file_d = registries_d(tmp_path / "f", {"lookaside": f"file://{root}"})
    imagetool("verify", "--policy", policy, "--registries.d", file_d, "--tls-verify=false", dest)
    # without lookaside configuration there is no signature to find
    none_d = registries_d(tmp_path / "n", {})
    bad = imagetool("verify", "--policy", policy, "--registries.d", none_d, "--tls-verify=false", dest, check=False)
    assert "no simple signature" in one_line_error(bad)
    # the same manifest under another tag: the signature is found (same digest) but names :v1
    other = f"docker://{plain_registry.host}/lookaside/skopeo:v2"
    tool(["skopeo", "--insecure-policy", "copy", "--dest-tls-verify=false", f"oci:{layout}:v1", other])
    bad = imagetool("verify", "--policy", policy, "--registries.d", write_d, "--tls-verify=false", other,
                    check=False)
    assert f"claims identity {plain_registry.host}/lookaside/skopeo:v1" in one_line_error(bad)
