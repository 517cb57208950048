"""docker:// against the real registry in its three configurations (plain, TLS + htpasswd, token)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagetool import media
from imagetool.copy import CopyOptions, copy_image
from imagetool.digest import Digest
from imagetool.errors import InvalidReference
from imagetool.store import refs
from imagetool.store.layout import LayoutStore
from imagetool.transports import SystemContext, parse_image_name
from tests.lib.cli import imagetool, one_line_error
from tests.lib.faultproxy import FaultProxy
from tests.lib.images import random_image, two_platform_index
from tests.lib.registry import Registry

pytestmark = pytest.mark.usefixtures("registry_env")


@pytest.fixture(params=["plain_registry", "tls_registry", "token_registry"])
def any_registry(request: pytest.FixtureRequest) -> Registry:
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


def _layout_digest(path: Path, name: str) -> Digest:
    return refs.resolve(LayoutStore.open(path), name).digest


def test_parse_follows_skopeo_reference_rules() -> None:
    ref = parse_image_name("docker://busybox")
    assert str(ref.docker_reference()) == "docker.io/library/busybox:latest"
    assert ref.string_within_transport() == "//busybox:latest"
    ref = parse_image_name("docker://localhost:5000/x@sha256:" + "a" * 64)
    assert ref.docker_reference().domain == "localhost:5000"  # type: ignore[union-attr]
    assert ref.docker_reference().tag is None  # type: ignore[union-attr]
    assert ref.policy_scopes()[:3] == ["localhost:5000/x@sha256:" + "a" * 64, "localhost:5000/x", "localhost:5000"]
    for bad in ("docker:busybox", "docker://Busybox", "docker://x:1@sha256:" + "a" * 64):
        with pytest.raises(InvalidReference):
            parse_image_name(bad)


def test_push_pull_round_trip_keeps_the_manifest_digest(any_registry: Registry, tmp_path: Path) -> None:
    reg = any_registry
    desc = random_image(tmp_path / "src", "v1", n_layers=3, size=300_000)
    repo = f"rt/{tmp_path.name.lower()}"
    imagetool("copy", "-q", *reg.tls_flags("dest-"), *reg.creds_flags("dest-"), f"oci:{tmp_path}/src:v1",
              reg.ref(f"{repo}:v1"))
    imagetool("copy", "-q", *reg.tls_flags("src-"), *reg.creds_flags("src-"), reg.ref(f"{repo}:v1"),
              f"oci:{tmp_path}/dst:v1", "--digestfile", str(tmp_path / "d"))
    assert (tmp_path / "d").read_text() == str(desc.digest)
    assert _layout_digest(tmp_path / "dst", "v1") == desc.digest
    # the registry itself serves the same bytes under the digest
    r = reg.raw_get(f"/v2/{repo}/manifests/v1", scope=f"repository:{repo}:pull",
                    headers={"Accept": media.OCI_MANIFEST})
    assert r.status_code == 200 and Digest.of(r.content) == desc.digest
    info = json.loads(imagetool("inspect", *reg.tls_flags(), *reg.creds_flags(), reg.ref(f"{repo}:v1")).stdout)
    assert info["Digest"] == str(desc.digest) and info["RepoTags"] == ["v1"]


def test_registry_to_registry_across_two_registries(plain_registry: Registry, token_registry: Registry,
                                                    tmp_path: Path) -> None:
    desc = random_image(tmp_path / "src", "v1", n_layers=2, size=100_000, seed=7)
    imagetool("copy", "-q", "--dest-tls-verify=false", f"oci:{tmp_path}/src:v1", plain_registry.ref("r2r/a:v1"))
    imagetool("copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false", *token_registry.creds_flags("dest-"),
              plain_registry.ref("r2r/a:v1"), token_registry.ref("r2r/b:copied"))
    imagetool("copy", "-q", "--src-tls-verify=false", *token_registry.creds_flags("src-"),
              token_registry.ref("r2r/b:copied"), f"oci:{tmp_path}/back:x")
    assert _layout_digest(tmp_path / "back", "x") == desc.digest


def test_same_registry_copy_to_a_new_repository_mounts_every_blob(plain_registry: Registry, tmp_path: Path) -> None:
    desc = random_image(tmp_path / "src", "v1", n_layers=3, size=200_000, seed=11)
    proxy = FaultProxy(plain_registry.host)
    try:
        imagetool("copy", "-q", "--dest-tls-verify=false", f"oci:{tmp_path}/src:v1", proxy.ref("mount/src:v1"))
        pushed = proxy.uploaded_bytes()
        assert pushed > 3 * 150_000  # the first push really sent the layers
        proxy.clear()
        imagetool("copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false", proxy.ref("mount/src:v1"),
                  proxy.ref("mount/other:v1"))
        assert proxy.uploaded_bytes() == 0
        mounts = [r for r in proxy.records if r.method == "POST" and "mount=" in r.path and r.status == 201]
        assert len(mounts) == 4  # three layers and the config
        # the cache knew the blobs only in mount/src: mounted without asking mount/other first
        assert not [r for r in proxy.records if r.method == "HEAD" and "/mount/other/blobs/" in r.path]
        # a later copy in a new process finds the blobs through the persistent location cache
        proxy.clear()
        imagetool("copy", "-q", "--dest-tls-verify=false", f"oci:{tmp_path}/src:v1", proxy.ref("mount/third:v1"))
        assert proxy.uploaded_bytes() == 0
        assert sum(1 for r in proxy.records if "mount=" in r.path and r.status == 201) == 4
    finally:
        proxy.close()
    r = plain_registry.raw_get("/v2/mount/third/manifests/v1", headers={"Accept": media.OCI_MANIFEST})
    assert Digest.of(r.content) == desc.digest


def test_all_on_an_index_keeps_the_index_digest(tls_registry: Registry, tmp_path: Path) -> None:
    index = two_platform_index(tmp_path / "src", seed=21)
    reg = tls_registry
    imagetool("copy", "-q", "--all", *reg.tls_flags("dest-"), *reg.creds_flags("dest-"),
              f"oci:{tmp_path}/src:multi", reg.ref("multi/img:all"))
    imagetool("copy", "-q", "--all", *reg.tls_flags("src-"), *reg.creds_flags("src-"), reg.ref("multi/img:all"),
              f"oci:{tmp_path}/dst:multi")
    assert _layout_digest(tmp_path / "dst", "multi") == index.digest
    # platform selection from the index with --override-arch
    imagetool("--override-arch", "arm64", "--override-variant", "v8", "copy", "-q", *reg.tls_flags("src-"),
              *reg.creds_flags("src-"), reg.ref("multi/img:all"), f"oci:{tmp_path}/arm:one")
    assert _layout_digest(tmp_path / "arm", "one") == index.manifests[1].digest


def test_delete_removes_the_manifest(plain_registry: Registry, tmp_path: Path) -> None:
    desc = random_image(tmp_path / "src", "v1", n_layers=1, seed=31)
    ref = plain_registry.ref("del/img:v1")
    imagetool("copy", "-q", "--dest-tls-verify=false", f"oci:{tmp_path}/src:v1", ref)
    assert plain_registry.raw_get(f"/v2/del/img/manifests/{desc.digest}").status_code == 200
    imagetool("delete", "--tls-verify=false", ref)
    assert plain_registry.raw_get(f"/v2/del/img/manifests/{desc.digest}").status_code == 404
    line = one_line_error(imagetool("inspect", "--tls-verify=false", ref, check=False))
    assert "manifest unknown" in line.lower()
    line = one_line_error(imagetool("delete", "--tls-verify=false", ref, check=False))
    assert "manifest unknown" in line.lower()


def test_wrong_credentials_give_one_clear_line(tls_registry: Registry, token_registry: Registry,
                                               tmp_path: Path) -> None:
    random_image(tmp_path / "src", "v1", n_layers=1, seed=41)
    for reg in (tls_registry, token_registry):
        proc = imagetool("copy", "-q", *reg.tls_flags("dest-"), "--dest-creds", f"{reg.username}:nope",
                         f"oci:{tmp_path}/src:v1", reg.ref("creds/img:v1"), check=False)
        line = one_line_error(proc)
        assert reg.host in line
        assert "invalid username/password" in line or "rejected the credentials" in line
        assert "nope" not in proc.stderr and "nope" not in proc.stdout


def test_username_and_password_flags(tls_registry: Registry, tmp_path: Path) -> None:
    desc = random_image(tmp_path / "src", "v1", n_layers=1, seed=43)
    reg = tls_registry
    user = ["--username", str(reg.username), "--password", str(reg.password)]
    imagetool("copy", "-q", *reg.tls_flags("dest-"), "--dest-username", str(reg.username), "--dest-password",
              str(reg.password), f"oci:{tmp_path}/src:v1", reg.ref("userpass/img:v1"))
    out = imagetool("inspect", *reg.tls_flags(), *user, "--format", "{{.Digest}}", reg.ref("userpass/img:v1"))
    assert out.stdout.strip() == str(desc.digest)
    both = imagetool("inspect", *reg.tls_flags(), *user, "--creds", reg.creds, reg.ref("userpass/img:v1"),
                     check=False)
    assert both.returncode == 2 and "cannot be used together" in one_line_error(both)
    half = imagetool("inspect", *reg.tls_flags(), "--username", str(reg.username), reg.ref("userpass/img:v1"),
                     check=False)
    assert half.returncode == 2 and "must be given together" in one_line_error(half)


def test_tls_is_verified_by_default(tls_registry: Registry, tmp_path: Path) -> None:
    random_image(tmp_path / "src", "v1", n_layers=1, seed=51)
    line = one_line_error(imagetool("copy", "-q", *tls_registry.creds_flags("dest-"), f"oci:{tmp_path}/src:v1",
                                    tls_registry.ref("tls/img:v1"), check=False))
    assert "certificate" in line.lower() or "tls" in line.lower()
    # turning verification off works without the CA
    imagetool("copy", "-q", "--dest-tls-verify=false", *tls_registry.creds_flags("dest-"),
              f"oci:{tmp_path}/src:v1", tls_registry.ref("tls/img:v1"))


def test_library_copy_with_system_context(token_registry: Registry, tmp_path: Path) -> None:
    """The library entry point alone (no CLI), the way a Python user would push and pull."""
    desc = random_image(tmp_path / "src", "v1", n_layers=2, seed=61)
    ctx = SystemContext(tls_verify=False, creds=(str(token_registry.username), str(token_registry.password)))
    copy_image(parse_image_name(f"oci:{tmp_path}/src:v1"), parse_image_name(token_registry.ref("lib/img:v1")),
               CopyOptions(dest_ctx=ctx))
    res = copy_image(parse_image_name(token_registry.ref("lib/img:v1")),
                     parse_image_name(f"oci:{tmp_path}/dst:v1"), CopyOptions(src_ctx=ctx))
    assert res.digest == desc.digest
    src = parse_image_name(token_registry.ref("lib/img:v1")).open_source(ctx)
    try:
        assert src.repo_tags() == ["v1"]  # type: ignore[attr-defined]
    finally:
        src.close()


def test_credentials_do_not_follow_a_redirect_to_another_host(token_registry: Registry, plain_registry: Registry,
                                                              tmp_path: Path) -> None:
    """Blob GETs redirected to other storage (as S3-backed registries do) go there without Authorization."""
    desc = random_image(tmp_path / "src", "v1", n_layers=2, size=50_000, seed=65)
    imagetool("copy", "-q", "--dest-tls-verify=false", *token_registry.creds_flags("dest-"),
              f"oci:{tmp_path}/src:v1", token_registry.ref("redir/img:v1"))
    imagetool("copy", "-q", "--dest-tls-verify=false", f"oci:{tmp_path}/src:v1", plain_registry.ref("redir/img:v1"))
    front, storage = FaultProxy(token_registry.host), FaultProxy(plain_registry.host)
    try:
        front.add("GET", r"/blobs/sha256:", redirect_to=f"http://{storage.host}", times=100)
        imagetool("copy", "-q", "--src-tls-verify=false", *token_registry.creds_flags("src-"),
                  front.ref("redir/img:v1"), f"oci:{tmp_path}/dst:v1")
    finally:
        front.close()
        storage.close()
    assert _layout_digest(tmp_path / "dst", "v1") == desc.digest
    redirected = [r for r in front.records if r.status == 307]
    served = [r for r in storage.records if r.method == "GET" and "/blobs/" in r.path]
    assert len(redirected) == len(served) >= 3  # two layers and the config (read once or twice)
    assert all(r.authorization for r in redirected)      # the registry itself saw the token
    assert not any(r.authorization for r in served)       # the other host never did


def test_round_trips_of_a_pull_and_a_no_op_copy(plain_registry: Registry, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """One ping per registry, in the first command only (registry/openhint.py); each blob read once; a no-op
    copy reads the manifest and names it, a copy to another repository mounts, inspect reads what it prints."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    random_image(tmp_path / "src", "v1", n_layers=3, size=20_000, seed=67)
    proxy = FaultProxy(plain_registry.host)
    try:
        imagetool("copy", "-q", "--dest-tls-verify=false", f"oci:{tmp_path}/src:v1", proxy.ref("trips/img:v1"))
        assert [(r.method, r.path) for r in proxy.records].count(("GET", "/v2/")) == 1  # over HTTP, after HTTPS
        proxy.clear()
        imagetool("copy", "-q", "--src-tls-verify=false", proxy.ref("trips/img:v1"), f"oci:{tmp_path}/dst:v1")
        calls = [(r.method, r.path.split("/")[-2]) for r in proxy.records]
        assert calls.count(("GET", "v2")) == 0  # the registry answered /v2/ anonymously last time
        assert calls.count(("GET", "manifests")) == 1
        blob_gets = [r.path for r in proxy.records if "/blobs/" in r.path]
        assert len(blob_gets) == 4 == len(set(blob_gets))  # three layers and the config, once each
        proxy.clear()
        imagetool("copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false", proxy.ref("trips/img:v1"),
                  proxy.ref("trips/img:v1"))
        calls = [(r.method, r.path.split("/")[-2]) for r in proxy.records]
        # the repository has every blob its manifest names: no HEAD, no config read
        assert calls == [("GET", "manifests"), ("PUT", "manifests")]
        proxy.clear()
        imagetool("copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false", proxy.ref("trips/img:v1"),
                  proxy.ref("trips/other:v1"))
        calls = sorted((r.method, r.path.split("/")[-2]) for r in proxy.records)
        assert calls == sorted([("GET", "manifests"), *[("POST", "uploads")] * 4, ("PUT", "manifests")])
        assert proxy.uploaded_bytes() == 0
        proxy.clear()
        imagetool("inspect", "--tls-verify=false", proxy.ref("trips/img:v1"))
        calls = sorted((r.method, r.path.split("/")[-2]) for r in proxy.records)
        assert calls == [("GET", "blobs"), ("GET", "manifests"), ("GET", "tags")]  # config, manifest, tags/list
    finally:
        proxy.close()


def test_a_config_whose_bytes_the_registry_changed_is_refused(plain_registry: Registry, tmp_path: Path) -> None:
    """A config is read whole and hashed at once (get_blob_bytes): other bytes of the same length under its
    digest fail `inspect` with the digest mismatch, on one line."""
    # blobs are shared by every repository of the session's registry: this image's are its own (seed), and
    # the bytes changed are put back
    desc = random_image(tmp_path / "img", "v1", n_layers=1, size=1000, seed=8191)
    manifest = json.loads((tmp_path / "img" / "blobs" / "sha256" / desc.digest.hex).read_bytes())
    config = Digest.parse(manifest["config"]["digest"])
    ref = plain_registry.ref(f"tampered/{tmp_path.name.lower()}:v1")
    imagetool("copy", "-q", "--dest-tls-verify=false", f"oci:{tmp_path}/img:v1", ref)
    assert json.loads(imagetool("inspect", "--tls-verify=false", ref).stdout)["Digest"] == str(desc.digest)
    stored = plain_registry.root / "docker/registry/v2/blobs/sha256" / config.hex[:2] / config.hex / "data"
    data = stored.read_bytes()
    stored.write_bytes(data.replace(b"{", b" ", 1)[:-1] + b" ")  # same length, other bytes
    try:
        assert len(stored.read_bytes()) == len(data)
        line = one_line_error(imagetool("inspect", "--tls-verify=false", ref, check=False))
    finally:
        stored.write_bytes(data)
    assert config.hex[:12] in line and "digest" in line.lower(), line
