"""What scripts written for skopeo match: flag spellings (--screds/--dcreds, --shared-blob-dir), the
registry's own words for a 401, exit code 2 for a missing image, sync --dry-run's lines, and a clear
refusal of skopeo transports imagetool does not have. skopeo 1.9 is the peer wherever it has the behaviour."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.lib.cli import imagetool, one_line_error, tool
from tests.lib.images import random_image
from tests.lib.registry import Registry

pytestmark = pytest.mark.usefixtures("registry_env")


def _skopeo(*args: str, check: bool = True):  # type: ignore[no-untyped-def]
    return tool(["skopeo", "--insecure-policy", *args], check=check)


def test_screds_and_dcreds_are_the_creds_flags(tls_registry: Registry, tmp_path: Path) -> None:
    reg = tls_registry
    random_image(tmp_path / "src", "v1", n_layers=1, seed=301)
    imagetool("copy", "-q", "--dest-cert-dir", str(reg.cert_dir), "--dcreds", reg.creds, f"oci:{tmp_path}/src:v1",
              reg.ref("words/creds:v1"))
    imagetool("copy", "-q", "--src-cert-dir", str(reg.cert_dir), "--screds", reg.creds, reg.ref("words/creds:v1"),
              f"dir:{tmp_path}/out")
    assert (tmp_path / "out" / "manifest.json").is_file()
    # skopeo reads what the --dcreds copy pushed, with the same aliases
    _skopeo("copy", "-q", "--src-cert-dir", str(reg.cert_dir), "--screds", reg.creds, reg.ref("words/creds:v1"),
            f"dir:{tmp_path}/theirs")
    assert (tmp_path / "theirs" / "manifest.json").read_bytes() == (tmp_path / "out" / "manifest.json").read_bytes()
    # a wrong --screds is used, not ignored
    proc = imagetool("copy", "-q", "--src-cert-dir", str(reg.cert_dir), "--screds", f"{reg.username}:wrong",
                     reg.ref("words/creds:v1"), f"dir:{tmp_path}/no", check=False)
    assert "authentication required" in one_line_error(proc) and "wrong" not in proc.stderr


def test_401_keeps_the_registrys_words(tls_registry: Registry, tmp_path: Path) -> None:
    """`unauthorized: authentication required` as the registry said it (skopeo prints it so), with or without
    credentials, then our reason."""
    reg = tls_registry
    for creds in ([], ["--creds", "nobody:nothing"], ["--creds", f"{reg.username}:bad"]):
        ours = imagetool("inspect", "--cert-dir", str(reg.cert_dir), *creds, reg.ref("words/nonesuch"), check=False)
        theirs = _skopeo("inspect", "--cert-dir", str(reg.cert_dir), *creds, reg.ref("words/nonesuch"), check=False)
        line = one_line_error(ours)
        assert ours.returncode == theirs.returncode == 1
        assert "unauthorized: authentication required" in line and "unauthorized: authentication required" \
            in theirs.stderr
        assert ("no credentials" in line) == (not creds) and ("invalid username/password" in line) == bool(creds)


def test_missing_image_exits_2(tls_registry: Registry, plain_registry: Registry, tmp_path: Path) -> None:
    reg = plain_registry
    random_image(tmp_path / "src", "v1", n_layers=1, seed=302)
    imagetool("copy", "-q", "--dest-tls-verify=false", f"oci:{tmp_path}/src:v1", reg.ref("words/there:v1"))
    imagetool("copy", "-q", f"oci:{tmp_path}/src:v1", f"oci-archive:{tmp_path}/a.tar:v1")
    missing = [reg.ref("words/there:nope"), reg.ref("words/nonesuch"), reg.ref("words/nonesuch:v1"),
               f"oci:{tmp_path}/src:nope", f"oci-archive:{tmp_path}/a.tar:nope"]
    for ref in missing:
        for argv in (["inspect", "--tls-verify=false", ref],
                     ["copy", "--src-tls-verify=false", ref, f"dir:{tmp_path}/out"]):
            proc = imagetool(*argv, check=False)
            assert proc.returncode == 2, (argv, proc.stderr)
            assert "/tmp/oci-archive-" not in one_line_error(proc)  # the archive is named, not its extraction
        if ref.startswith("docker://"):
            assert imagetool("delete", "--tls-verify=false", ref, check=False).returncode == 2
    # skopeo 1.9 exits 1 here; current skopeo 2 (its system tests expect 2): the words match either way
    theirs = _skopeo("inspect", "--tls-verify=false", reg.ref("words/nonesuch"), check=False)
    assert "manifest unknown" in theirs.stderr
    assert "manifest unknown" in imagetool("inspect", "--tls-verify=false", reg.ref("words/nonesuch"),
                                           check=False).stderr.lower()
    # other failures keep exit 1: a registry that refuses us, a layout that is not there, a bad name
    assert imagetool("inspect", "--cert-dir", str(tls_registry.cert_dir), tls_registry.ref("words/x:v1"),
                     check=False).returncode == 1
    assert imagetool("inspect", f"oci:{tmp_path}/no-layout:v1", check=False).returncode == 1
    assert imagetool("inspect", "docker://UPPER/case", check=False).returncode == 1


def test_shared_blob_dir_copy_inspect_delete(plain_registry: Registry, tmp_path: Path) -> None:
    """oci: layouts whose blobs live in one shared directory: written, read back, read by skopeo, deleted
    (the name goes, the shared blobs stay for the other layouts)."""
    shared, one, two = tmp_path / "shared", tmp_path / "one", tmp_path / "two"
    desc = random_image(tmp_path / "src", "v1", n_layers=2, seed=303)
    imagetool("copy", "-q", "--dest-shared-blob-dir", str(shared), f"oci:{tmp_path}/src:v1", f"oci:{one}:v1")
    blobs = sorted(p.name for p in (shared / "sha256").iterdir())
    assert len(blobs) == 4 and str(desc.digest).split(":")[1] in blobs
    assert not any((one / "blobs").rglob("*")) if (one / "blobs").exists() else True
    # without the flag the layout is incomplete; with it, inspect and skopeo read it
    assert imagetool("inspect", f"oci:{one}:v1", check=False).returncode != 0
    ours = imagetool("inspect", "--shared-blob-dir", str(shared), "--format", "{{.Digest}}", f"oci:{one}:v1")
    theirs = _skopeo("inspect", "--shared-blob-dir", str(shared), "--format", "{{.Digest}}", f"oci:{one}:v1")
    assert ours.stdout.strip() == theirs.stdout.strip() == str(desc.digest)
    # layout with shared blobs -> ordinary layout: blob for blob the shared directory
    imagetool("copy", "-q", "--src-shared-blob-dir", str(shared), f"oci:{one}:v1", f"oci:{two}:v1")
    assert sorted(p.name for p in (two / "blobs" / "sha256").iterdir()) == blobs
    # skopeo writes into the same shared directory and we read its layout
    _skopeo("copy", "-q", "--dest-shared-blob-dir", str(shared), f"oci:{two}:v1", f"oci:{tmp_path}/three:v1")
    assert imagetool("inspect", "--shared-blob-dir", str(shared), "--format", "{{.Digest}}",
                     f"oci:{tmp_path}/three:v1").stdout.strip() == str(desc.digest)
    imagetool("delete", "--shared-blob-dir", str(shared), f"oci:{one}:v1")
    assert sorted(p.name for p in (shared / "sha256").iterdir()) == blobs
    assert imagetool("inspect", "--shared-blob-dir", str(shared), f"oci:{one}:v1", check=False).returncode == 2


_SKOPEO_LINE = re.compile(r'msg="(?P<msg>[^"]*)"(?: from="(?P<from>[^"]*)" to="(?P<to>[^"]*)")?')
_OUR_LINE = re.compile(r'^(?P<msg>Would have .*?)(?: from="(?P<from>[^"]*)" to="(?P<to>[^"]*)")?$')


def _dry_run_lines(text: str, pattern: re.Pattern[str]) -> list[tuple[str, str | None, str | None]]:
    found = []
    for line in text.splitlines():
        m = pattern.search(line)
        if m and m.group("msg").startswith("Would have"):
            found.append((m.group("msg"), m.group("from"), m.group("to")))
    return found


@pytest.mark.parametrize("scoped", [False, True])
def test_sync_dry_run_says_what_skopeo_says(plain_registry: Registry, tmp_path: Path, scoped: bool) -> None:
    reg = plain_registry
    for i, tag in enumerate(["a", "b"]):
        random_image(tmp_path / f"l{i}", tag, n_layers=1, seed=310 + i)
        imagetool("copy", "-q", "--dest-tls-verify=false", f"oci:{tmp_path}/l{i}:{tag}", reg.ref(f"words/sync:{tag}"))
    scope = ["--scoped"] if scoped else []
    argv = ["sync", "--dry-run", *scope, "--src", "docker", "--dest", "dir", "--src-tls-verify=false",
            f"{reg.host}/words/sync", str(tmp_path / "out")]
    ours = imagetool(*argv)
    assert not (tmp_path / "out").exists()  # a dry run writes nothing (skopeo makes the directory)
    theirs = _skopeo(*argv)
    lines = _dry_run_lines(ours.stderr, _OUR_LINE)
    assert lines == _dry_run_lines(theirs.stderr, _SKOPEO_LINE)
    sub = f"{reg.host}/words/sync" if scoped else "sync"
    assert [msg for msg, _, _ in lines] == ["Would have copied image ref 1/2", "Would have copied image ref 2/2",
                                            "Would have synced 2 images from 1 sources"]
    assert sorted((src, dst) for _, src, dst in lines[:2]) == [  # in the registry's order of tags
        (f"docker://{reg.host}/words/sync:a", f"dir:{tmp_path}/out/{sub}:a"),
        (f"docker://{reg.host}/words/sync:b", f"dir:{tmp_path}/out/{sub}:b")]


@pytest.mark.parametrize("name", ["docker-daemon:busybox:latest", "sif:/tmp/x.sif", "ostree:img@/ostree/repo",
                                  "tarball:/tmp/x.tar"])
def test_unsupported_skopeo_transports_are_named(name: str, tmp_path: Path) -> None:
    transport = name.split(":")[0]
    for argv in (["inspect", name], ["copy", name, f"dir:{tmp_path}/d"], ["copy", f"dir:{tmp_path}/d", name]):
        line = one_line_error(imagetool(*argv, check=False))
        assert f"transport '{transport}' is not supported by imagetool" in line, line
    assert not os.path.exists(tmp_path / "d")
