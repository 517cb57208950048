"""OCI 1.1 referrers against the real registry: sigstore signatures stored as referrers and verified,
`attach` of an SBOM, `inspect --referrers`, and `copy --all --referrers` to a second registry.

The Debian registry (Distribution 2.8) has no referrers API, so these writes and reads go through
the tag schema (`sha256-<hex>` index). The API path is exercised with tests/lib/faultproxy.py in front
of the real registry answering GET /v2/<repo>/referrers/<digest> itself (the registry behind cannot).
"""

from __future__ import annotations

import json
from pathlib import Path

from imagetool import media
from tests.lib.cli import imagetool, one_line_error
from tests.lib.images import random_image
from tests.lib.registry import Registry
from tests.signature.conftest import write_policy
from tests.signature.test_sigstore import make_keys

SIG_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json"
SBOM_TYPE = "application/spdx+json"


def push_signed(tmp_path: Path, registry: Registry, repo: str) -> tuple[str, str, Path]:
    """An image pushed to `repo` with a sigstore signature stored as a referrer; (ref, digest, public key)."""
    layout = tmp_path / "layout"
    random_image(layout, "v1", n_layers=1, size=512)
    private, public, pass_file = make_keys(tmp_path)
    ref = f"{registry.host}/{repo}:v1"
    digestfile = tmp_path / "digest"
    imagetool("--insecure-policy", "copy", "--dest-tls-verify=false", "--sign-by-sigstore-private-key",
              str(private), "--sign-passphrase-file", str(pass_file), "--sign-referrers",
              "--digestfile", str(digestfile), f"oci:{layout}:v1", f"docker://{ref}")
    return ref, digestfile.read_text().strip(), public


def referrers_of(ref: str, *extra: str) -> list[dict]:
    out = imagetool("inspect", "--tls-verify=false", "--referrers", *extra, f"docker://{ref}")
    return json.loads(out.stdout)


def test_signature_as_referrer_is_verified(plain_registry: Registry, registry_env: None, tmp_path: Path) -> None:
    ref, digest, public = push_signed(tmp_path, plain_registry, "referrers/signed")
    # no registries.d attachment configuration: the signature is a referrer, in the tag-schema index
    index = plain_registry.raw_get(f"/v2/referrers/signed/manifests/sha256-{digest.split(':')[1]}",
                                   headers={"Accept": media.OCI_INDEX})
    assert index.status_code == 200
    entries = index.json()["manifests"]
    assert [e["artifactType"] for e in entries] == [SIG_TYPE]
    artifact = json.loads(plain_registry.raw_get(f"/v2/referrers/signed/manifests/{entries[0]['digest']}",
                                                 headers={"Accept": media.OCI_MANIFEST}).content)
    assert artifact["subject"]["digest"] == digest and artifact["artifactType"] == SIG_TYPE
    assert artifact["layers"][0]["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
    assert "dev.cosignproject.cosign/signature" in artifact["layers"][0]["annotations"]
    # no .sig attachment was written
    assert plain_registry.raw_get(f"/v2/referrers/signed/manifests/sha256-{digest.split(':')[1]}.sig").status_code \
        == 404

    policy = write_policy(tmp_path / "policy.json", [{"type": "sigstoreSigned", "keyPath": str(public)}])
    ok = imagetool("--policy", policy, "verify", "--tls-verify=false", f"docker://{ref}")
    assert "sigstoreSigned: signed as" in ok.stdout
    (tmp_path / "other").mkdir()
    other_key = make_keys(tmp_path / "other")[1]
    bad_policy = write_policy(tmp_path / "bad.json", [{"type": "sigstoreSigned", "keyPath": str(other_key)}])
    bad = imagetool("--policy", bad_policy, "verify", "--tls-verify=false", f"docker://{ref}", check=False)
    assert "not made by a trusted key" in one_line_error(bad)


def test_attach_inspect_and_copy_referrers(plain_registry: Registry, plain_registry2: Registry,
                                           registry_env: None, tmp_path: Path) -> None:
    ref, digest, public = push_signed(tmp_path, plain_registry, "referrers/app")
    sbom = tmp_path / "sbom.spdx.json"
    sbom.write_text(json.dumps({"spdxVersion": "SPDX-2.3", "name": "app"}))
    out = imagetool("attach", "--tls-verify=false", "--artifact-type", SBOM_TYPE, "--annotation", "made-by=test",
                    str(sbom), f"docker://{ref}")
    sbom_digest = out.stdout.strip()
    assert sbom_digest.startswith("sha256:")

    found = referrers_of(ref)
    assert sorted(e["artifactType"] for e in found) == sorted([SIG_TYPE, SBOM_TYPE])
    by_type = {e["artifactType"]: e for e in found}
    assert by_type[SBOM_TYPE]["digest"] == sbom_digest
    assert by_type[SBOM_TYPE]["annotations"] == {"made-by": "test"}
    assert by_type[SBOM_TYPE]["size"] > 0 and by_type[SBOM_TYPE]["mediaType"] == media.OCI_MANIFEST
    only = referrers_of(ref, "--artifact-type", SBOM_TYPE)
    assert [e["digest"] for e in only] == [sbom_digest]
    assert referrers_of(ref, "--artifact-type", "application/none") == []
    # the SBOM's layer is the file, named as oras names it
    manifest = json.loads(plain_registry.raw_get(f"/v2/referrers/app/manifests/{sbom_digest}",
                                                 headers={"Accept": media.OCI_MANIFEST}).content)
    assert manifest["subject"]["digest"] == digest
    assert manifest["layers"][0]["annotations"] == {"org.opencontainers.image.title": "sbom.spdx.json"}
    blob = plain_registry.raw_get(f"/v2/referrers/app/blobs/{manifest['layers'][0]['digest']}")
    assert blob.content == sbom.read_bytes()

    # copy --all --referrers to a second registry: the signature is found and verified there
    policy = write_policy(tmp_path / "policy.json", [{"type": "sigstoreSigned", "keyPath": str(public)}])
    second = f"{plain_registry2.host}/mirror/app:v1"
    imagetool("--policy", policy, "copy", "--all", "--referrers", "--src-tls-verify=false",
              "--dest-tls-verify=false", f"docker://{ref}", f"docker://{second}")
    assert sorted(e["digest"] for e in referrers_of(second)) == sorted(e["digest"] for e in found)
    # the signature claims the original name: the mirror's policy accepts that repository
    mirror = write_policy(tmp_path / "mirror.json", [{"type": "sigstoreSigned", "keyPath": str(public),
                                                      "signedIdentity": {"type": "exactRepository",
                                                                         "dockerRepository": ref.rsplit(":", 1)[0]}}])
    ok = imagetool("--policy", mirror, "verify", "--tls-verify=false", f"docker://{second}")
    assert "sigstoreSigned: signed as" in ok.stdout
    # without --referrers nothing refers to the copy, and the policy refuses it
    bare = f"{plain_registry2.host}/mirror/bare:v1"
    imagetool("--policy", policy, "copy", "--all", "--src-tls-verify=false", "--dest-tls-verify=false",
              f"docker://{ref}", f"docker://{bare}")
    assert referrers_of(bare) == []
    bad = imagetool("--policy", mirror, "verify", "--tls-verify=false", f"docker://{bare}", check=False)
    assert "no sigstore signature" in one_line_error(bad)


def test_sync_carries_referrers(plain_registry: Registry, plain_registry2: Registry, registry_env: None,
                                tmp_path: Path) -> None:
    ref, _, public = push_signed(tmp_path, plain_registry, "referrers/synced")
    policy = write_policy(tmp_path / "policy.json", [{"type": "sigstoreSigned", "keyPath": str(public),
                                                      "signedIdentity": {"type": "exactRepository",
                                                                         "dockerRepository": ref.rsplit(":", 1)[0]}}])
    imagetool("--policy", policy, "sync", "--src", "docker", "--dest", "docker", "--referrers",
              "--src-tls-verify=false", "--dest-tls-verify=false", ref, f"{plain_registry2.host}/synced")
    ok = imagetool("--policy", policy, "verify", "--tls-verify=false", f"docker://{plain_registry2.host}/synced/synced:v1")
    assert "sigstoreSigned: signed as" in ok.stdout


def test_referrers_api_when_the_registry_answers_it(plain_registry: Registry, registry_env: None,
                                                    tmp_path: Path) -> None:
    """A proxy answers the referrers endpoint (the registry behind has none): listing and verification
    use the API's answer and never ask for the tag-schema index."""
    from tests.lib.faultproxy import FaultProxy

    ref, digest, public = push_signed(tmp_path, plain_registry, "referrers/api")
    index = plain_registry.raw_get(f"/v2/referrers/api/manifests/sha256-{digest.split(':')[1]}",
                                   headers={"Accept": media.OCI_INDEX}).content
    proxy = FaultProxy(plain_registry.host)
    try:
        proxy.add("GET", rf"/v2/referrers/api/referrers/{digest}", status=200, body=index, times=10,
                  headers={"Content-Type": media.OCI_INDEX})
        via = f"{proxy.host}/referrers/api:v1"
        found = referrers_of(via)
        assert [e["artifactType"] for e in found] == [SIG_TYPE]
        policy = write_policy(tmp_path / "policy.json", [{"type": "sigstoreSigned", "keyPath": str(public),
                                                          "signedIdentity": {"type": "exactRepository",
                                                                             "dockerRepository": ref[:-3]}}])
        ok = imagetool("--policy", policy, "verify", "--tls-verify=false", f"docker://{via}")
        assert "sigstoreSigned: signed as" in ok.stdout
        asked = [r.path for r in proxy.records if r.method == "GET"]
        assert any("/referrers/" in p for p in asked)
        assert not any("/manifests/sha256-" in p for p in asked)
        # the API's answer is what counts: an empty index there hides the tag-schema one
        proxy.clear()
        empty = json.dumps({"schemaVersion": 2, "mediaType": media.OCI_INDEX, "manifests": []}).encode()
        proxy.add("GET", rf"/v2/referrers/api/referrers/{digest}", status=200, body=empty, times=10,
                  headers={"Content-Type": media.OCI_INDEX})
        assert referrers_of(via) == []
        bad = imagetool("--policy", policy, "verify", "--tls-verify=false", f"docker://{via}", check=False)
        assert "no sigstore signature" in one_line_error(bad)
    finally:
        proxy.close()


def test_referrers_need_a_registry(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    random_image(layout, "v1", n_layers=1, size=128)
    bad = imagetool("inspect", "--referrers", f"oci:{layout}:v1", check=False)
    assert "referrers live in registries" in one_line_error(bad)
    bad = imagetool("inspect", "--artifact-type", "x", f"oci:{layout}:v1", check=False)
    assert "--artifact-type needs --referrers" in one_line_error(bad)


def test_copy_referrers_refused_before_writing_outside_registries(plain_registry: Registry, registry_env: None,
                                                                  tmp_path: Path) -> None:
    ref, _, _ = push_signed(tmp_path, plain_registry, "referrers/nowhere")
    dest = tmp_path / "out"
    bad = imagetool("--insecure-policy", "copy", "--referrers", "--src-tls-verify=false", f"docker://{ref}",
                    f"dir:{dest}", check=False)
    assert "--referrers copies between registries only" in one_line_error(bad)
    assert not dest.exists()
    bad = imagetool("--insecure-policy", "copy", "--sign-referrers", f"oci:{tmp_path / 'layout'}:v1",
                    f"dir:{dest}", check=False)
    assert "--sign-referrers needs --sign-by-sigstore-private-key" in one_line_error(bad)
    private = tmp_path / "key.private"
    bad = imagetool("--insecure-policy", "copy", "--sign-by-sigstore-private-key", str(private),
                    "--sign-passphrase-file", str(tmp_path / "pass"), "--sign-referrers", "--sign-identity",
                    "example.com/x:1", f"oci:{tmp_path / 'layout'}:v1", f"dir:{dest}", check=False)
    assert "cannot store signatures as referrers" in one_line_error(bad)
    assert not dest.exists()


def test_no_tag_index_when_the_registry_indexes_referrers(plain_registry: Registry, registry_env: None) -> None:
    """A registry answering the artifact's PUT with OCI-Subject indexes it itself: no sha256-<hex> tag is written.
    (The proxy answers that PUT, standing in for an OCI 1.1 registry; the registry behind would not say so.)"""
    from imagetool.descriptor import Descriptor
    from imagetool.digest import Digest
    from imagetool.registry.client import Client, ClientOptions
    from imagetool.registry.referrers import Blob, attach
    from tests.lib.faultproxy import FaultProxy

    proxy = FaultProxy(plain_registry.host)
    try:
        client = Client(proxy.host, ClientOptions(tls_verify=False))
        subject = Descriptor(media.OCI_MANIFEST, Digest.of(b"subject"), 7)
        proxy.add("PUT", r"^/v2/referrers/api-put/manifests/sha256:[0-9a-f]{64}$", status=201, body=b"", times=1,
                  headers={"OCI-Subject": str(subject.digest), "Content-Type": "text/plain"})
        attach(client, "referrers/api-put", subject, "application/example", [Blob(b"data", "text/plain")])
        puts = [r.path for r in proxy.records if r.method == "PUT" and "/manifests/" in r.path]
        assert len(puts) == 1 and "sha256-" not in puts[0]
        # without the header, the tag schema's index is written
        attach(client, "referrers/api-put", subject, "application/example", [Blob(b"data", "text/plain")])
        puts = [r.path for r in proxy.records if r.method == "PUT" and "/manifests/" in r.path]
        assert puts[-1].endswith(f"/manifests/sha256-{subject.digest.hex}")
    finally:
        proxy.close()
