"""RUN --mount=type=tmpfs,tmpcopyup (buildah's): the mount starts as the image's directory at its target,
and what the step writes there is gone after it, as with any tmpfs; a target missing from the image is an
empty tmpfs. Run by both executors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.build.test_fidelity import BASE, build, rootfs
from tests.lib.buildah import fs_tree


@pytest.mark.parametrize("runtime", ["embedded", "runc"])
def test_tmpfs_copyup_starts_with_the_image_directory(tmp_path: Path, local_store: Path, base: Path,
                                                      runtime: str) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    dockerfile = (f"FROM {BASE}\nRUN mkdir -p /etc/ssl/certs && echo cert > /etc/ssl/certs/ca\n"
                  "RUN --mount=type=tmpfs,target=/etc/ssl,tmpcopyup cat /etc/ssl/certs/ca > /seen"
                  " && echo dropped > /etc/ssl/added\n"
                  "RUN --mount=type=tmpfs,target=/etc/ssl ls -A /etc/ssl > /plain\n"
                  "RUN --mount=type=tmpfs,target=/absent,tmpcopyup ls -A /absent > /absent-seen"
                  " && touch /absent/x\n")
    build(ctx, dockerfile, "copyup", "--runtime", runtime)
    tree = fs_tree(rootfs(local_store, "copyup", tmp_path / "b"))
    assert tree["/seen"][5] == b"cert\n"
    assert tree["/etc/ssl/certs/ca"][5] == b"cert\n" and "/etc/ssl/added" not in tree
    assert tree["/plain"][5] == b""          # without tmpcopyup the tmpfs starts empty
    assert tree["/absent-seen"][5] == b"" and "/absent/x" not in tree
