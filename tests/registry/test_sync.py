"""`imagetool sync` between the real registries: repositories, tags, skopeo's YAML, --scoped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.lib.cli import imagetool
from tests.lib.images import random_image
from tests.lib.registry import Registry

pytestmark = pytest.mark.usefixtures("registry_env")


def _tags(reg: Registry, repo: str) -> list[str]:
    r = reg.raw_get(f"/v2/{repo}/tags/list", scope=f"repository:{repo}:pull")
    return sorted(r.json().get("tags") or []) if r.status_code == 200 else []


def _digest(reg: Registry, repo: str, tag: str) -> str:
    r = reg.raw_get(f"/v2/{repo}/manifests/{tag}", scope=f"repository:{repo}:pull")
    return r.headers.get("Docker-Content-Digest", "")


def test_sync_a_whole_repository_and_scoped(plain_registry: Registry, token_registry: Registry,
                                            tmp_path: Path) -> None:
    src, dst = plain_registry, token_registry
    digests = {}
    for i, tag in enumerate(["a", "b", "c"]):
        d = random_image(tmp_path / f"l{i}", tag, n_layers=1, seed=90 + i)
        digests[tag] = str(d.digest)
        imagetool("copy", "-q", "--dest-tls-verify=false", f"oci:{tmp_path}/l{i}:{tag}", src.ref(f"sync/app:{tag}"))
    imagetool("sync", "-q", "--src", "docker", "--dest", "docker", "--src-tls-verify=false",
              "--dest-tls-verify=false", *dst.creds_flags("dest-"), f"{src.host}/sync/app", f"{dst.host}/mirror")
    assert _tags(dst, "mirror/app") == ["a", "b", "c"]
    assert {t: _digest(dst, "mirror/app", t) for t in "abc"} == digests
    # --scoped keeps the full source name (skopeo's layout), here into dir: images, and back again
    imagetool("sync", "-q", "--scoped", "--src", "docker", "--dest", "dir", "--src-tls-verify=false",
              f"{src.host}/sync/app:b", str(tmp_path / "dirs"))
    image_dir = tmp_path / "dirs" / src.host / "sync" / "app:b"
    assert (image_dir / "manifest.json").is_file()
    imagetool("sync", "-q", "--src", "dir", "--dest", "docker", "--dest-tls-verify=false",
              *dst.creds_flags("dest-"), str(image_dir), f"{dst.host}/fromdir")
    assert _tags(dst, "fromdir/app") == ["b"]
    assert _digest(dst, "fromdir/app", "b") == digests["b"]


def test_sync_from_skopeo_yaml(plain_registry: Registry, plain_registry2: Registry, tmp_path: Path) -> None:
    src, dst = plain_registry, plain_registry2
    for i, tag in enumerate(["1.0", "1.1", "2.0"]):
        random_image(tmp_path / f"y{i}", tag, n_layers=1, seed=95 + i)
        imagetool("copy", "-q", "--dest-tls-verify=false", f"oci:{tmp_path}/y{i}:{tag}", src.ref(f"yaml/one:{tag}"))
        imagetool("copy", "-q", "--dest-tls-verify=false", f"oci:{tmp_path}/y{i}:{tag}", src.ref(f"yaml/two:{tag}"))
    (tmp_path / "sync.yml").write_text(f"""
{src.host}:
  tls-verify: false
  images:
    yaml/one:
      - "1.0"
      - "2.0"
  images-by-tag-regex:
    yaml/two: ^1\\.
""")
    out = imagetool("sync", "--src", "yaml", "--dest", "docker", "--dest-tls-verify=false",
                    str(tmp_path / "sync.yml"), f"{dst.host}/y")
    assert "Synced 4 of 4 images" in out.stderr
    assert out.stdout.count("Writing manifest to image destination") == 4  # each image's own progress
    assert _tags(dst, "y/one") == ["1.0", "2.0"]
    assert _tags(dst, "y/two") == ["1.0", "1.1"]
    info = json.loads(imagetool("inspect", "--tls-verify=false", dst.ref("y/two:1.1")).stdout)
    assert info["Digest"] == _digest(src, "yaml/two", "1.1")


def test_sync_yaml_credentials_and_cert_dir(tls_registry: Registry, plain_registry2: Registry,
                                            tmp_path: Path) -> None:
    """skopeo's per-registry `credentials` and `cert-dir` reach an htpasswd registry over verified TLS."""
    from tests.lib.cli import one_line_error

    src, dst = tls_registry, plain_registry2
    desc = random_image(tmp_path / "img", "v1", n_layers=1, seed=98)
    imagetool("copy", "-q", *src.tls_flags("dest-"), *src.creds_flags("dest-"), f"oci:{tmp_path}/img:v1",
              src.ref("yamlcreds/app:v1"))

    def sync_file(password: str) -> str:
        path = tmp_path / f"sync-{password}.yml"
        path.write_text(f"""
{src.host}:
  cert-dir: {src.cert_dir}
  credentials:
    username: {src.username}
    password: {password}
  images:
    yamlcreds/app: []
""")
        return str(path)

    proc = imagetool("sync", "-q", "--src", "yaml", "--dest", "docker", "--dest-tls-verify=false",
                     sync_file("wrong-pass"), f"{dst.host}/yc", check=False)
    line = one_line_error(proc)
    assert "invalid username/password" in line and "wrong-pass" not in proc.stderr
    imagetool("sync", "-q", "--src", "yaml", "--dest", "docker", "--dest-tls-verify=false",
              sync_file(str(src.password)), f"{dst.host}/yc")
    assert _tags(dst, "yc/app") == ["v1"]
    assert _digest(dst, "yc/app", "v1") == str(desc.digest)


def _dir_images(tmp_path: Path, count: int, broken: int | None = None) -> Path:
    """`count` dir: images under one root (synced in name order); image `broken` has a corrupt layer."""
    root = tmp_path / "dirs"
    for i in range(count):
        random_image(tmp_path / f"src{i}", "v1", n_layers=2, seed=300 + i)
        imagetool("copy", "-q", f"oci:{tmp_path}/src{i}:v1", f"dir:{root}/img{i:02d}:t")
    if broken is not None:
        manifest = json.loads((root / f"img{broken:02d}:t" / "manifest.json").read_text())
        layer = root / f"img{broken:02d}:t" / manifest["layers"][0]["digest"].split(":")[1]
        layer.write_bytes(b"not the layer")
    return root


def _ref_lines(stderr: str) -> list[str]:
    return [line.split(":")[0].removeprefix("Copying image ref ") for line in stderr.splitlines()
            if line.startswith("Copying image ref")]


def test_sync_copies_images_at_once_and_reports_them_in_order(plain_registry: Registry, tmp_path: Path) -> None:
    count = 8
    root = _dir_images(tmp_path, count, broken=5)
    proc = imagetool("sync", "--keep-going", "--max-parallel-images", "4", "--src", "dir", "--dest", "docker",
                     "--dest-tls-verify=false", str(root), f"{plain_registry.host}/par", check=False)
    assert proc.returncode != 0
    assert _ref_lines(proc.stderr) == [f"{i}/{count}" for i in range(1, count + 1)]
    lines = proc.stderr.splitlines()
    failed_at = next(n for n, line in enumerate(lines) if line.startswith("imagetool: dir:"))
    assert "img05" in lines[failed_at] and lines[failed_at - 1].startswith(f"Copying image ref 6/{count}")
    assert f"Synced {count - 1} of {count} images" in proc.stderr
    assert proc.stdout.count("Writing manifest to image destination") == count - 1
    for i in range(count):
        assert _tags(plain_registry, f"par/img{i:02d}") == ([] if i == 5 else ["t"])
    # the registry saw the copies overlap: some image's manifest was written after a later image started
    log = plain_registry.log()
    firsts = [log.find(f"/v2/par/img{i:02d}/") for i in range(count) if i != 5]
    assert all(f >= 0 for f in firsts)
    manifest_puts = [log.find(f'"PUT /v2/par/img{i:02d}/manifests/t') for i in range(count) if i != 5]
    assert any(put > first for put, first in zip(manifest_puts, firsts[1:], strict=False)), \
        "each image finished before the next one started"


def test_sync_without_keep_going_stops_at_the_first_failure(plain_registry: Registry, tmp_path: Path) -> None:
    root = _dir_images(tmp_path, 6, broken=2)
    proc = imagetool("sync", "--src", "dir", "--dest", "docker", "--dest-tls-verify=false", str(root),
                     f"{plain_registry.host}/stop", check=False)
    assert proc.returncode != 0
    assert _ref_lines(proc.stderr) == ["1/6", "2/6", "3/6"]
    assert "size mismatch" in proc.stderr.splitlines()[-1] and "Synced" not in proc.stderr
    assert _tags(plain_registry, "stop/img00") == ["t"] and _tags(plain_registry, "stop/img01") == ["t"]
    assert _tags(plain_registry, "stop/img02") == []
