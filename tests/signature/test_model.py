"""The pieces under the policy: scopes, identities, payloads, envelopes, registries.d, OCI attachments."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagetool.digest import Digest
from imagetool.errors import PolicyRejected, SignatureError
from imagetool.reference import parse as parse_reference
from imagetool.registry import lookaside
from imagetool.signature import identity, payload
from imagetool.signature import policy as p
from imagetool.signature.policy_eval import PolicyContext
from imagetool.transports import parse_image_name
from imagetool.transports import envelopes
from imagetool.transports.base import SystemContext
from tests.lib.images import random_image
from tests.signature.conftest import FIXTURES

ACCEPT = [{"type": "insecureAcceptAnything"}]
REJECT = [{"type": "reject"}]


def test_scopes_most_specific_first() -> None:
    doc = {"default": REJECT, "transports": {"docker": {
        "": REJECT,
        "example.com": ACCEPT,
        "example.com/ns": REJECT,
        "example.com/ns/app:1": ACCEPT,
        "*.example.com": ACCEPT,
    }}}
    policy = p.parse(json.dumps(doc).encode())

    def scope_for(text: str) -> str:
        ref = parse_image_name("docker://" + text)
        return policy.requirements_for("docker", ref.policy_scopes())[0]

    assert scope_for("example.com/ns/app:1") == "docker:example.com/ns/app:1"
    assert scope_for("example.com/ns/app:2") == "docker:example.com/ns"
    assert scope_for("example.com/other/app:2") == "docker:example.com"
    assert scope_for("reg.example.com/x/y:1") == "docker:*.example.com"
    assert scope_for("quay.io/x/y:1") == "docker transport default"
    assert policy.requirements_for("dir", ["/a/b", ""])[0] == "default"


@pytest.mark.parametrize("rule,image,signed,ok", [
    ({"type": "matchRepoDigestOrExact"}, "a.io/x/y:1", "a.io/x/y:1", True),
    ({"type": "matchRepoDigestOrExact"}, "a.io/x/y:1", "a.io/x/y:2", False),
    ({"type": "matchRepoDigestOrExact"}, "a.io/x/y@sha256:" + "1" * 64, "a.io/x/y:7", True),
    ({"type": "matchRepoDigestOrExact"}, "a.io/x/y@sha256:" + "1" * 64, "a.io/x/z:7", False),
    ({"type": "matchRepository"}, "a.io/x/y:1", "a.io/x/y:2", True),
    ({"type": "matchRepository"}, "a.io/x/y:1", "a.io/x/z:1", False),
    ({"type": "matchExact"}, "a.io/x/y:1", "a.io/x/y:1", True),
    ({"type": "matchExact"}, "a.io/x/y@sha256:" + "1" * 64, "a.io/x/y:1", False),
    ({"type": "matchExact"}, "a.io/x/y:1", "a.io/x/y", False),
    ({"type": "exactReference", "dockerReference": "b.io/q:3"}, "a.io/x/y:1", "b.io/q:3", True),
    ({"type": "exactReference", "dockerReference": "b.io/q:3"}, "b.io/q:4", "b.io/q:4", False),
    ({"type": "exactRepository", "dockerRepository": "b.io/q"}, "a.io/x/y:1", "b.io/q:9", True),
    ({"type": "remapIdentity", "prefix": "mirror.io/lib", "signedPrefix": "docker.io/library"},
     "mirror.io/lib/busybox:1", "busybox:1", True),
    ({"type": "remapIdentity", "prefix": "mirror.io/lib", "signedPrefix": "docker.io/library"},
     "mirror.io/libx/busybox:1", "busybox:1", False),
    ({"type": "remapIdentity", "prefix": "mirror.io", "signedPrefix": "a.io"}, "mirror.io/x/y:1", "a.io/x/y:1", True),
])
def test_signed_identity_rules(rule: dict, image: str, signed: str, ok: bool) -> None:
    parsed = p.parse_identity(rule, "test")
    assert identity.matches(parsed, parse_reference(image), parse_reference(signed)) is ok


@pytest.mark.parametrize("bad", [
    {"type": "exactReference", "dockerReference": "b.io/q"},          # no tag
    {"type": "remapIdentity", "prefix": "mirror.io/x:tag", "signedPrefix": "a.io"},
    {"type": "matchRepository", "extra": 1},
    {"type": "whatever"},
])
def test_invalid_identities(bad: dict) -> None:
    with pytest.raises(PolicyRejected):
        p.parse_identity(bad, "test")


def test_payload_is_strict() -> None:
    digest = Digest.of(b"m")
    good = payload.make(digest, parse_reference("a.io/x:1"), payload.SIMPLE_TYPE)
    parsed = payload.parse(good, payload.SIMPLE_TYPE)
    assert parsed.manifest_digest == digest and str(parsed.identity()) == "a.io/x:1"
    with pytest.raises(SignatureError, match="type"):
        payload.parse(good, payload.COSIGN_TYPE)
    doc = json.loads(good)
    doc["critical"]["extra"] = "x"
    with pytest.raises(SignatureError, match="critical has fields"):
        payload.parse(json.dumps(doc).encode(), payload.SIMPLE_TYPE)
    with pytest.raises(SignatureError, match="not JSON"):
        payload.parse(b"\xff\xfe", payload.SIMPLE_TYPE)


def test_envelopes_round_trip() -> None:
    for name in ("dir-img-cosign-valid/signature-1", "dir-img-valid/signature-1"):
        data = (FIXTURES / name).read_bytes()
        sig = envelopes.parse(data)
        assert envelopes.parse(envelopes.serialize(sig)) == sig
    assert isinstance(envelopes.parse((FIXTURES / "dir-img-valid/signature-1").read_bytes()),
                      envelopes.SimpleSignature)
    with pytest.raises(SignatureError):
        envelopes.parse(b"\x00something-else\n{}")
    with pytest.raises(SignatureError):
        envelopes.parse(b"")


def test_registries_d(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("default-docker:\n  lookaside: file:///var/default\n"
                                     "docker:\n  example.com:\n    sigstore: https://sigs.example.com/\n")
    (tmp_path / "b.yaml").write_text("docker:\n  example.com/team:\n    lookaside: file:///team\n"
                                     "    lookaside-staging: file:///staging\n    use-sigstore-attachments: false\n")
    (tmp_path / "ignored.txt").write_text("not: [valid")
    conf = lookaside.RegistriesD.load(str(tmp_path))
    team = conf.for_reference(parse_reference("example.com/team/app:1"))
    assert (team.read_url, team.write_url, team.use_sigstore_attachments) == ("file:///team", "file:///staging", False)
    host = conf.for_reference(parse_reference("example.com/other/app"))
    assert (host.read_url, host.write_url) == ("https://sigs.example.com/", "https://sigs.example.com/")
    assert conf.for_reference(parse_reference("quay.io/x/y")).read_url == "file:///var/default"
    digest = Digest.of(b"x")
    assert lookaside.signature_url("https://sigs.example.com/", parse_reference("example.com/other/app"), digest, 0) \
        == f"https://sigs.example.com/other/app@sha256={digest.hex}/signature-1"
    (tmp_path / "c.yaml").write_text("docker:\n  example.com:\n    lookaside: file:///dup\n")
    with pytest.raises(SignatureError, match="more than one file"):
        lookaside.RegistriesD.load(str(tmp_path))
    assert lookaside.RegistriesD.load(str(tmp_path / "absent")).for_reference(
        parse_reference("a.io/b")).read_url is None


def test_registries_d_each_setting_falls_through(tmp_path: Path) -> None:
    """containers/image looks each setting up on its own: a scope without it defers to the next."""
    (tmp_path / "a.yaml").write_text(
        "default-docker:\n  lookaside: file:///default\n  use-sigstore-attachments: true\n"
        "docker:\n"
        "  example.com:\n    use-sigstore-attachments: false\n"
        "  example.com/team:\n    lookaside: file:///team\n"
        "  example.com/team/app:1:\n    lookaside-staging: file:///staging-app-1\n"
        "  '*.example.org':\n    sigstore: https://sigs.example.org/\n")
    conf = lookaside.RegistriesD.load(str(tmp_path))

    def settings(ref: str) -> tuple[str | None, str | None, bool]:
        got = conf.for_reference(parse_reference(ref))
        return got.read_url, got.write_url, got.use_sigstore_attachments

    assert settings("example.com/team/app:1") == ("file:///team", "file:///staging-app-1", False)
    assert settings("example.com/team/app:2") == ("file:///team", "file:///team", False)
    assert settings("example.com/other/app:1") == ("file:///default", "file:///default", False)
    assert settings("reg.example.org/x/y:1") == ("https://sigs.example.org/", "https://sigs.example.org/", True)
    assert settings("quay.io/x/y:1") == ("file:///default", "file:///default", True)


def test_lookaside_file_write_replaces(tmp_path: Path) -> None:
    ref = parse_reference("example.com/team/app:1")
    digest = Digest.of(b"manifest")
    base = f"file://{tmp_path}"
    lookaside.write_signatures(base, ref, digest, [b"one", b"two", b"three"])
    lookaside.write_signatures(base, ref, digest, [b"new"])
    assert lookaside.read_signatures(base, ref, digest) == [b"new"]
    with pytest.raises(SignatureError, match="only file://"):
        lookaside.write_signatures("https://example.com/sigs", ref, digest, [b"x"])


def test_oci_layout_attachments(tmp_path: Path) -> None:
    """An OCI layout holds sigstore signatures as the image tagged sha256-<hex>.sig, like a registry."""
    layout = tmp_path / "layout"
    vector = FIXTURES / "dir-img-cosign-valid"
    image = random_image(layout, "v1", n_layers=1, size=64)
    ref = parse_image_name(f"oci:{layout}:v1")
    dst = ref.open_destination(SystemContext())
    dst.put_manifest((layout / "blobs" / "sha256" / image.digest.hex).read_bytes(), image.media_type)
    manifest = (vector / "manifest.json").read_bytes()
    digest = Digest.of(manifest)
    sig = envelopes.parse((vector / "signature-1").read_bytes())
    assert isinstance(sig, envelopes.SigstoreSignature)
    assert envelopes.store_attachments(dst, digest, [sig])
    assert not envelopes.store_attachments(dst, digest, [sig])  # already there
    dst.commit()  # attachment names appear in index.json at commit, with the image's
    dst.close()
    src = ref.open_source(SystemContext())
    assert envelopes.source_attachments(src, digest) == [sig]
    assert envelopes.source_attachments(src, Digest.of(b"other")) == []
    policy = {"default": [{"type": "sigstoreSigned", "keyPath": str(FIXTURES / "cosign.pub"),
                           "signedIdentity": {"type": "matchRepository"}}]}
    ctx = PolicyContext.from_bytes(json.dumps(policy).encode())
    verdict = ctx.check(ref, src, manifest, None,
                        identity=parse_reference("192.168.64.2:5000/cosign-signed-single-sample:latest"))
    assert "sigstoreSigned" in verdict
    with pytest.raises(PolicyRejected, match="no sigstore signature"):
        ctx.check(ref, src, src.get_manifest()[0], None,
                  identity=parse_reference("192.168.64.2:5000/cosign-signed-single-sample:latest"))
    # the dir transport has nowhere to attach
    assert envelopes.source_attachments(parse_image_name(f"dir:{vector}").open_source(SystemContext()),
                                        digest) is None


def test_example_policies_parse(tmp_path: Path) -> None:
    examples = Path(__file__).resolve().parents[2] / "testdata" / "policy"
    names = sorted(examples.glob("*.json"))
    assert len(names) >= 2
    for path in names:
        text = path.read_text().replace("@FIXTURES@", str(FIXTURES))
        policy = p.parse(text.encode(), str(tmp_path / path.name))
        assert policy.default
    mixed = p.parse((examples / "registry-mixed.json").read_text().replace("@FIXTURES@", str(FIXTURES)).encode())
    label, reqs = mixed.requirements_for("docker", parse_image_name("docker://mirror.example.com/library/x:1")
                                         .policy_scopes())
    assert label == "docker:mirror.example.com/library" and isinstance(reqs[0], p.SignedBy)
    assert isinstance(mixed.requirements_for("docker", ["quay.io/x", ""])[1][0], p.Reject)
