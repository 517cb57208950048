"""build --cache-to / --cache-from: step layers shared through a real registry between two stores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.lib.bundles import write_tree
from tests.lib.cli import imagetool, one_line_error
from tests.lib.images import busybox_files
from tests.lib.registry import Registry

pytestmark = pytest.mark.usefixtures("registry_env")

DOCKERFILE = "FROM scratch\nCOPY rootfs/ /\nRUN head -c 16 /dev/urandom | od -x > /stamp\nCMD [\"cat\", \"/stamp\"]\n"


def _context(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    write_tree(ctx / "rootfs", busybox_files())
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    return ctx


def test_cache_travels_through_a_registry(plain_registry: Registry, local_store: Path, tmp_path: Path) -> None:
    ctx = _context(tmp_path)
    cache = f"{plain_registry.host}/build-cache/app"
    first = imagetool("build", "--tls-verify=false", "--cache-to", cache, "-t", "localhost/app:1", str(ctx)).stdout
    assert "--> 2 step layers recorded in the cache" in first
    tags = json.loads(imagetool("list-tags", "--tls-verify=false", f"docker://{cache}").stdout)["Tags"]
    assert len(tags) == 2 and all(len(t) == 64 for t in tags)
    stamp = imagetool("run", "--rm", "localhost/app:1").stdout
    assert imagetool("build", "--tls-verify=false", "--cache-to", cache, str(ctx)).stdout.count(
        "--> 0 step layers recorded") == 1  # a second push has nothing to add

    other = tmp_path / "other-store"
    # another machine's store: the RUN step is not run again, its layer comes from the registry
    out = imagetool("--store", str(other), "build", "--tls-verify=false", "--cache-from", cache,
                    "-t", "localhost/app:1", str(ctx)).stdout
    assert out.count("--> Using cache") == 2
    assert imagetool("--store", str(other), "run", "--rm", "localhost/app:1").stdout == stamp
    # and its local cache now knows the steps: a rebuild asks no registry (this one would not answer)
    again = imagetool("--store", str(other), "build", "--cache-from", "127.0.0.1:1/gone", str(ctx)).stdout
    assert again.count("--> Using cache") == 2 and "Warning" not in again
    # a repository without the steps is a miss: the RUN step runs
    fresh = tmp_path / "fresh-store"
    out = imagetool("--store", str(fresh), "build", "--tls-verify=false", "--cache-from",
                    f"{plain_registry.host}/build-cache/empty", str(ctx)).stdout
    assert "Using cache" not in out and "STEP 3/4: RUN" in out


def test_cache_problems(local_store: Path, tmp_path: Path) -> None:
    ctx = _context(tmp_path)
    out = imagetool("build", "--cache-from", "127.0.0.1:1/nothing/here", str(ctx)).stdout
    assert "[Warning] --cache-from:" in out and "building without it" in out
    bad = imagetool("build", "--cache-to", "127.0.0.1:1/x:tag", str(ctx), check=False)
    assert bad.returncode != 0 and "without a tag or digest" in one_line_error(bad)
