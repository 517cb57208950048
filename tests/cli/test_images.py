"""images / tag / rmi / prune on the local store."""

from __future__ import annotations

import json
from pathlib import Path

from tests.lib.cli import imagetool, one_line_error
from tests.lib.images import random_image


def _names() -> list[str]:
    return sorted(n for image in json.loads(imagetool("images", "--json").stdout) for n in image["names"] or [])


def test_tag_rmi_prune_cycle(tmp_path: Path, local_store: Path) -> None:
    desc = random_image(tmp_path / "src", "v1")
    imagetool("copy", "-q", f"oci:{tmp_path}/src:v1", "localhost/app:1")
    imagetool("tag", "localhost/app:1", "busybox", "quay.io/x/y:2")
    assert _names() == ["localhost/app:1", "localhost/busybox:latest", "quay.io/x/y:2"]  # a short name: localhost/
    table = imagetool("images").stdout.splitlines()
    assert table[0].split()[:3] == ["REPOSITORY", "TAG", "IMAGE"]
    assert any(line.split()[:2] == ["localhost/busybox", "latest"] for line in table)
    assert all(" years ago " in line for line in table[1:])  # created 2024-01-01, shown as buildah does
    image_id = imagetool("images", "-q").stdout.split()[0]
    assert imagetool("inspect", "-f", "{{.Digest}}", image_id).stdout.strip() == str(desc.digest)
    assert "several names" in one_line_error(imagetool("rmi", image_id, check=False))
    imagetool("rmi", "busybox", "quay.io/x/y:2")
    assert _names() == ["localhost/app:1"]
    blobs = local_store / "blobs" / "sha256"
    assert len(list(blobs.iterdir())) == 5
    imagetool("rmi", "localhost/app:1")
    assert _names() == [] and list(blobs.iterdir()) == []


def test_prune_removes_orphans_only(tmp_path: Path, local_store: Path) -> None:
    random_image(tmp_path / "src", "v1")
    imagetool("copy", "-q", f"oci:{tmp_path}/src:v1", "localhost/app:1")
    orphan = local_store / "blobs" / "sha256" / ("0" * 64)
    orphan.write_bytes(b"orphan")
    out = imagetool("prune")
    assert out.stdout.split() == ["sha256:" + "0" * 64]
    assert not orphan.exists()
    imagetool("inspect", "localhost/app:1")


def test_rmi_and_tag_errors(local_store: Path) -> None:
    assert "not found" in one_line_error(imagetool("rmi", "localhost/none:1", check=False))
    assert "not found" in one_line_error(imagetool("tag", "localhost/none:1", "x", check=False))


def test_prune_keeps_signature_attachments(tmp_path: Path, local_store: Path) -> None:
    """A sigstore signature is an image named REPO:sha256-<hex>.sig: prune keeps its blobs too."""
    random_image(tmp_path / "src", "v1")
    (tmp_path / "pw").write_text("secret\n")
    imagetool("generate-key", "--output-prefix", str(tmp_path / "k"), "--passphrase-file", str(tmp_path / "pw"))
    imagetool("copy", "-q", "--sign-by-sigstore-private-key", str(tmp_path / "k.private"),
              "--sign-passphrase-file", str(tmp_path / "pw"), f"oci:{tmp_path}/src:v1", "localhost/signed:1")
    names = _names()
    digest = imagetool("inspect", "-f", "{{.Digest}}", "localhost/signed:1").stdout.strip()
    assert names == ["localhost/signed:1", f"localhost/signed:{digest.replace(':', '-')}.sig"]
    blobs = sorted(p.name for p in (local_store / "blobs" / "sha256").iterdir())
    orphan = local_store / "blobs" / "sha256" / ("f" * 64)
    orphan.write_bytes(b"orphan")
    assert imagetool("prune").stdout.split() == ["sha256:" + "f" * 64]
    assert sorted(p.name for p in (local_store / "blobs" / "sha256").iterdir()) == blobs
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"default": [{"type": "sigstoreSigned", "keyPath": str(tmp_path / "k.pub"),
                                               "signedIdentity": {"type": "matchRepository"}}]}))
    imagetool("--policy", str(policy), "copy", "-q", "localhost/signed:1", f"oci:{tmp_path}/out:v1")
    assert (tmp_path / "out" / "index.json").is_file()


def test_images_filters_and_rmi_all_and_prune(tmp_path: Path, local_store: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\nARG K\nARG V\nLABEL $K=$V\n")
    ids = {}
    for name, label, stamp in (("localhost/a:1", "tier=web", 1000), ("localhost/b:1", "tier=db", 2000),
                               ("cc:1", "other=x", 3000), (None, "dangling=yes", 500)):
        tags = ["-t", name] if name else []
        key, value = label.split("=")
        ids[name] = imagetool("build", "-q", *tags, "--build-arg", f"K={key}", "--build-arg", f"V={value}",
                              "--timestamp", str(stamp), str(ctx)).stdout.strip()

    def listed(*filters: str) -> set[str | None]:
        args = [a for f in filters for a in ("--filter", f)]
        found = set(imagetool("images", "-q", "--no-trunc", *args).stdout.split())
        return {name for name, image_id in ids.items() if image_id in found}

    assert listed() == set(ids)
    assert listed("dangling=true") == {None}
    assert listed("dangling=false") == {"localhost/a:1", "localhost/b:1", "cc:1"}
    assert listed("reference=localhost/*") == {"localhost/a:1", "localhost/b:1", "cc:1"}  # cc:1 is localhost/cc:1
    assert listed("reference=cc") == listed("reference=localhost/cc:*") == {"cc:1"}
    assert listed("label=tier") == {"localhost/a:1", "localhost/b:1"}
    assert listed("label=tier=db") == {"localhost/b:1"}
    assert listed("label=tier", "since=localhost/a:1") == {"localhost/b:1"}
    assert listed("before=localhost/b:1") == {"localhost/a:1", None}
    assert listed(f"id={ids['cc:1'][:8]}") == {"cc:1"}
    assert imagetool("images", "--format", "{{.Nope}}", check=False).returncode != 0  # a struct, as in buildah
    bad = imagetool("images", "--filter", "colour=red", check=False)
    assert bad.returncode == 2 and "invalid filter" in one_line_error(bad)
    assert imagetool("rmi", "--prune").stdout.split() == [ids[None]]
    assert listed() == {"localhost/a:1", "localhost/b:1", "cc:1"}
    assert imagetool("rmi", check=False).returncode == 2
    imagetool("rmi", "--all")
    assert listed() == set() and list((local_store / "blobs" / "sha256").iterdir()) == []
