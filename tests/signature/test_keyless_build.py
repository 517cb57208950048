"""The Rekor, Fulcio and PKI vectors through `build` FROM a registry: the same verdicts as `verify`.

The vectors hold a manifest and a signature but none of the blobs the manifest names, so no
registry would take the manifest: a proxy in front of the real registry (tests/lib/faultproxy.py)
answers for the vector manifest itself, and the signature is stored in the real registry as an
OCI 1.1 referrer of it (tag schema). A refused base image fails the build in one line before
anything is pulled; an accepted one gets past the policy and stops at the first missing blob.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagetool.descriptor import Descriptor
from imagetool.digest import Digest
from imagetool.registry.client import Client, ClientOptions
from imagetool.registry.referrers import Blob, attach
from imagetool.transports.envelopes import SIGSTORE_MARKER, SIGSTORE_REFERRER_TYPE
from tests.lib.cli import imagetool, one_line_error
from tests.lib.faultproxy import FaultProxy
from tests.lib.registry import Registry
from tests.signature.conftest import write_policy
from tests.signature.test_keyless import (COSIGN, COSIGN2, FULCIO, FULCIO_REPO, KEY_REKOR, KEY_REPO, PKI,
                                          PKI_REPO, REKOR, fulcio, pki)

CASES = [
    ("key", KEY_REKOR, KEY_REPO, {"keyPath": COSIGN2, "rekorPublicKeyPath": REKOR},
     {"keyPath": COSIGN, "rekorPublicKeyPath": REKOR}, "the public key or certificate in the Rekor SET does not match"),
    ("fulcio", FULCIO, FULCIO_REPO, {"fulcio": fulcio(), "rekorPublicKeyPath": REKOR},
     {"fulcio": fulcio(subjectEmail="this-does-not-match@example.com"), "rekorPublicKeyPath": REKOR},
     "the certificate is not for email 'this-does-not-match@example.com'"),
    ("pki", PKI, PKI_REPO, {"pki": pki()}, {"pki": pki(subjectHostname="other.example.com")},
     "the certificate is not for host 'other.example.com'"),
]


def serve_vector(registry: Registry, proxy: FaultProxy, image: Path, repo: str) -> str:
    """The vector's manifest answered by the proxy as `repo:v1`, its signature a referrer in the registry."""
    raw = (image / "manifest.json").read_bytes()
    mt = json.loads(raw)["mediaType"]
    digest = Digest.of(raw)
    doc = json.loads((image / "signature-1").read_bytes()[len(SIGSTORE_MARKER):])
    import base64

    client = Client(registry.host, ClientOptions(tls_verify=False))
    attach(client, repo, Descriptor(mt, digest, len(raw)), SIGSTORE_REFERRER_TYPE,
           [Blob(base64.b64decode(doc["payload"]), doc["mimeType"], doc["annotations"])])
    proxy.add("GET", rf"^/v2/{repo}/manifests/(v1|{digest})$", status=200, body=raw, times=50,
              headers={"Content-Type": mt, "Docker-Content-Digest": str(digest)})
    return f"{proxy.host}/{repo}:v1"


@pytest.mark.parametrize("name,image,repo,good,bad,reason", CASES, ids=[c[0] for c in CASES])
def test_build_from_judges_the_vectors(plain_registry: Registry, registry_env: None, tmp_path: Path, name: str,
                                       image: Path, repo: str, good: dict, bad: dict, reason: str) -> None:
    proxy = FaultProxy(plain_registry.host)
    try:
        base = serve_vector(plain_registry, proxy, image, f"vectors/{name}")
        ident = {"type": "exactRepository", "dockerRepository": repo}
        context = tmp_path / "context"
        context.mkdir()
        (context / "Dockerfile").write_text(f"FROM {base}\nLABEL judged=yes\n")

        def build(req: dict, policy_name: str):  # type: ignore[no-untyped-def]
            policy = write_policy(tmp_path / policy_name, [{"type": "sigstoreSigned", **req, "signedIdentity": ident}])
            return imagetool("--policy", policy, "build", "--tls-verify=false", "-t", f"localhost/from-{name}:1",
                             str(context), check=False)

        refused = one_line_error(build(bad, "bad.json"))
        assert "rejected by policy scope default: sigstoreSigned" in refused and reason in refused, refused
        manifest = json.loads((image / "manifest.json").read_text())
        blobs = [d["digest"] for d in (manifest["config"], *manifest["layers"])]
        asked_blobs = [r.path for r in proxy.records if "/blobs/" in r.path]
        assert not any(b in p for b in blobs for p in asked_blobs)  # refused before anything was pulled
        passed = one_line_error(build(good, "good.json"))
        assert "rejected" not in passed and "not in the local store and pulling it failed" in passed, passed
        assert any(b.split(":")[1][:12] in passed for b in blobs), passed  # a blob the vector lacks
        assert any(b in r.path for b in blobs for r in proxy.records if "/blobs/" in r.path)  # the pull had begun
        assert f"vectors/{name}" not in imagetool("images").stdout
    finally:
        proxy.close()
