"""Every containers/image signature vector gives exactly its expected verdict, in dir: form."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import pytest

from imagetool.errors import PolicyRejected
from imagetool.reference import parse as parse_reference
from imagetool.signature.policy_eval import PolicyContext
from imagetool.transports import parse_image_name
from imagetool.transports.base import SystemContext
from tests.lib.cli import imagetool, one_line_error
from tests.signature.conftest import FIXTURES, write_policy

GPG_KEY = str(FIXTURES / "public-key.gpg")
COSIGN_KEY = str(FIXTURES / "cosign.pub")
COSIGN_DIGEST = "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00"
COSIGN_REPO = "192.168.64.2:5000/cosign-signed-single-sample"


def signed_by(identity: dict | None = None, **key: object) -> dict:
    req: dict = {"type": "signedBy", "keyType": "GPGKeys", **(key or {"keyPath": GPG_KEY})}
    if identity:
        req["signedIdentity"] = identity
    return req


def sigstore_signed(identity: dict | None = None, **key: object) -> dict:
    req: dict = {"type": "sigstoreSigned", **(key or {"keyPath": COSIGN_KEY})}
    if identity:
        req["signedIdentity"] = identity
    return req


def judge(tmp_path: Path, image_dir: Path, requirement: dict, identity: str | None) -> str:
    """The policy verdict for a dir: image, judged as `identity`; raises PolicyRejected."""
    policy = write_policy(tmp_path / "policy.json", [requirement])
    ctx = PolicyContext.load(policy, False)
    ref = parse_image_name(f"dir:{image_dir}")
    src = ref.open_source(SystemContext())
    raw, _ = src.get_manifest()
    return ctx.check(ref, src, raw, None, identity=parse_reference(identity) if identity else None)


def dir_image(tmp_path: Path, manifest: Path, *signatures: Path) -> Path:
    """A dir: image holding only a manifest and signature-N files (no layer is needed to verify)."""
    d = tmp_path / "img"
    d.mkdir()
    shutil.copyfile(manifest, d / "manifest.json")
    for i, sig in enumerate(signatures, 1):
        shutil.copyfile(sig, d / f"signature-{i}")
    return d


GPG_DIRS = [
    ("dir-img-valid", True),
    ("dir-img-valid-2", True),
    ("dir-img-mixed", True),
    ("dir-img-modified-manifest", False),
    ("dir-img-manifest-digest-error", False),
    ("dir-img-unsigned", False),
]


@pytest.mark.parametrize("name,accepted", GPG_DIRS)
def test_gpg_dir_vectors(tmp_path: Path, name: str, accepted: bool) -> None:
    image = FIXTURES / name
    if accepted:
        verdict = judge(tmp_path, image, signed_by(), "testing/manifest:latest")
        assert "08CD26E446E2E95249B7A405E932F44B23E8DD43" in verdict
        assert "docker.io/testing/manifest:latest" in verdict or "testing/manifest:latest" in verdict
    else:
        with pytest.raises(PolicyRejected):
            judge(tmp_path, image, signed_by(), "testing/manifest:latest")


GPG_FILES = [
    ("image.signature", None),
    ("no-optional-fields.signature", None),
    ("unknown-key.signature", "untrusted key"),
    ("corrupt.signature", "invalid OpenPGP signature"),
    ("invalid-blob.signature", "payload"),
    ("invalid-reference.signature", "invalid docker reference"),
    ("expired.signature", "expired"),
]


@pytest.mark.parametrize("name,error", GPG_FILES)
def test_gpg_signature_files(tmp_path: Path, name: str, error: str | None) -> None:
    image = dir_image(tmp_path, FIXTURES / "image.manifest.json", FIXTURES / name)
    requirement = signed_by({"type": "exactRepository", "dockerRepository": "testing/manifest"})
    if error is None:
        assert "signedBy" in judge(tmp_path, image, requirement, None)
    else:
        with pytest.raises(PolicyRejected, match=error):
            judge(tmp_path, image, requirement, None)


def test_gpg_identity_must_match(tmp_path: Path) -> None:
    image = FIXTURES / "dir-img-valid"
    with pytest.raises(PolicyRejected, match="claims identity"):
        judge(tmp_path, image, signed_by(), "testing/manifest:other")
    # by digest: the repository is enough
    judge(tmp_path, image, signed_by(),
          "testing/manifest@sha256:20bf21ed457b390829cdbeec8795a7bea1626991fda603e0d01b4e7f60427e55")
    judge(tmp_path, image, signed_by({"type": "matchRepository"}), "testing/manifest:other")
    judge(tmp_path, image, signed_by({"type": "exactRepository", "dockerRepository": "testing/manifest"}), None)
    judge(tmp_path, image, signed_by({"type": "remapIdentity", "prefix": "mirror.example.com/testing",
                                      "signedPrefix": "docker.io/testing"}),
          "mirror.example.com/testing/manifest:latest")
    with pytest.raises(PolicyRejected):
        judge(tmp_path, image, signed_by({"type": "remapIdentity", "prefix": "mirror.example.com/other",
                                          "signedPrefix": "docker.io/testing"}),
              "mirror.example.com/testing/manifest:latest")
    with pytest.raises(PolicyRejected, match="no docker reference"):
        judge(tmp_path, image, signed_by(), None)


def test_gpg_key_data_and_key_paths(tmp_path: Path) -> None:
    image = FIXTURES / "dir-img-valid"
    data = base64.b64encode((FIXTURES / "public-key.gpg").read_bytes()).decode()
    judge(tmp_path, image, signed_by(keyData=data), "testing/manifest:latest")
    judge(tmp_path, image, signed_by(keyPaths=[GPG_KEY]), "testing/manifest:latest")


COSIGN_DIRS = [
    ("dir-img-cosign-valid", True),
    ("dir-img-cosign-valid-2", True),
    ("dir-img-cosign-mixed", True),
    ("dir-img-cosign-modified-manifest", False),
    ("dir-img-cosign-manifest-digest-error", False),
    ("dir-img-cosign-other-attachment", False),
]


@pytest.mark.parametrize("name,accepted", COSIGN_DIRS)
def test_cosign_dir_vectors(tmp_path: Path, name: str, accepted: bool) -> None:
    image = FIXTURES / name
    by_repo = sigstore_signed({"type": "matchRepository"})
    by_digest = sigstore_signed()
    if accepted:
        assert "sigstoreSigned" in judge(tmp_path, image, by_repo, f"{COSIGN_REPO}:latest")
        assert "sigstoreSigned" in judge(tmp_path, image, by_digest, f"{COSIGN_REPO}@{COSIGN_DIGEST}")
    else:
        with pytest.raises(PolicyRejected):
            judge(tmp_path, image, by_repo, f"{COSIGN_REPO}:latest")
        with pytest.raises(PolicyRejected):
            judge(tmp_path, image, by_digest, f"{COSIGN_REPO}@{COSIGN_DIGEST}")


def test_cosign_valid_with_tag(tmp_path: Path) -> None:
    image = FIXTURES / "dir-img-cosign-valid-with-tag"
    exact = sigstore_signed({"type": "matchExact"})
    assert "skopeo-signed:tag" in judge(tmp_path, image, exact, "192.168.64.2:5000/skopeo-signed:tag")
    with pytest.raises(PolicyRejected, match="claims identity"):
        judge(tmp_path, image, exact, "192.168.64.2:5000/skopeo-signed:othertag")


def test_cosign_untrusted_keys(tmp_path: Path) -> None:
    # a signature by another key
    image = dir_image(tmp_path, FIXTURES / "dir-img-cosign-valid" / "manifest.json",
                      FIXTURES / "unknown-cosign-key.signature")
    with pytest.raises(PolicyRejected, match="not made by a trusted key"):
        judge(tmp_path, image, sigstore_signed({"type": "matchRepository"}), f"{COSIGN_REPO}:latest")
    # a valid signature, but the policy trusts another key
    with pytest.raises(PolicyRejected, match="not made by a trusted key"):
        judge(tmp_path, FIXTURES / "dir-img-cosign-valid",
              sigstore_signed({"type": "matchRepository"}, keyPath=str(FIXTURES / "cosign2.pub")),
              f"{COSIGN_REPO}:latest")
    # keyData works like keyPath
    data = base64.b64encode((FIXTURES / "cosign.pub").read_bytes()).decode()
    judge(tmp_path, FIXTURES / "dir-img-cosign-valid", sigstore_signed({"type": "matchRepository"}, keyData=data),
          f"{COSIGN_REPO}:latest")


def test_gpg_key_does_not_accept_sigstore_signatures(tmp_path: Path) -> None:
    with pytest.raises(PolicyRejected, match="no simple signature"):
        judge(tmp_path, FIXTURES / "dir-img-cosign-valid", signed_by(), f"{COSIGN_REPO}:latest")


def test_verify_cli_on_vectors(tmp_path: Path) -> None:
    """`imagetool verify` prints the deciding requirement; a rejection is one line and exit 1."""
    by_repo = [sigstore_signed({"type": "matchRepository"})]
    policy = write_policy(tmp_path / "p.json", [{"type": "reject"}],
                          {"dir": {str(FIXTURES / "dir-img-cosign-valid"): by_repo,
                                   str(FIXTURES / "dir-img-cosign-modified-manifest"): by_repo}})
    ok = imagetool("verify", "--policy", policy, "--identity", f"{COSIGN_REPO}:latest",
                   f"dir:{FIXTURES / 'dir-img-cosign-valid'}")
    assert "accepted by policy scope dir:" in ok.stdout and "sigstoreSigned" in ok.stdout
    bad = imagetool("verify", "--policy", policy, "--identity", f"{COSIGN_REPO}:latest",
                    f"dir:{FIXTURES / 'dir-img-cosign-modified-manifest'}", check=False)
    assert bad.returncode == 1
    assert "signature is for manifest sha256:634a8f35" in one_line_error(bad)
    # an image no scope names falls to the default: reject
    other = imagetool("verify", "--policy", policy, f"dir:{FIXTURES / 'dir-img-valid'}", check=False)
    assert bad.returncode == 1
    assert "rejects every image" in one_line_error(other)
