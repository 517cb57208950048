"""RUN steps give the filesystem buildah gives: whiteouts, opaque directories, links, modes, owners.

The reference is `buildah bud --layers --runtime runc` on its overlay driver: one layer per step,
as ours, so a hardlinked file changed by a later step is copied up apart from its other names
(buildah's vfs driver keeps them together; Docker's overlay2 does not).
"""

from __future__ import annotations

import os
from pathlib import Path

from imagetool.copy import copy_image
from imagetool.transports import parse_image_name
from tests.lib.buildah import Buildah, fs_tree
from tests.lib.bundles import runc_run, umoci_unpack
from tests.lib.cli import imagetool, tool
from tests.lib.images import busybox_image

BASE = "localhost/busybox:base"
DOCKERFILE = f"""FROM {BASE}
RUN mkdir -p /srv/a/b /srv/gone && echo one > /srv/a/one && ln -s one /srv/a/link && ln /srv/a/one /srv/a/hard \\
    && echo two > /srv/two && ln /srv/two /srv/two-link
RUN chmod 0751 /srv/a && chown 5:6 /srv/a/one && touch /srv/setuid && chmod 4755 /srv/setuid
RUN rm -rf /srv/a/b /srv/gone && rm /bin/ls && mkdir /opq && echo x > /opq/x && echo x > /opq/old
RUN rm -rf /opq && mkdir /opq && echo y > /opq/y && mkfifo /srv/fifo
CMD ["/bin/cat", "/srv/a/link", "/opq/y"]
"""
#: empty mountpoint stubs buildah 1.28 leaves in RUN layers (Docker and imagetool leave none)
BUILDAH_STUBS = {"/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/run"}


def test_run_steps_match_buildah_and_run_under_runc(tmp_path: Path, local_store: Path) -> None:
    layout = tmp_path / "base"
    busybox_image(layout, "latest")
    copy_image(parse_image_name(f"oci:{layout}:latest"), parse_image_name(BASE))
    buildah = Buildah(tmp_path / "buildah", driver="overlay")
    image_id = tool([*buildah.argv, "pull", "-q", f"oci:{layout}:latest"]).stdout.strip()
    tool([*buildah.argv, "tag", image_id, BASE])
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)

    out = imagetool("build", "-t", "runs", str(ctx)).stdout
    assert "STEP 5/6: RUN rm -rf /opq" in out
    bundle = umoci_unpack(local_store, "localhost/runs:latest", tmp_path / "bundle")
    ours = fs_tree(bundle / "rootfs")
    buildah.bud(ctx, ctx / "Dockerfile", "runs", "--layers", "--runtime", "runc")
    theirs = {path: entry for path, entry in buildah.tree("runs").items() if path not in BUILDAH_STUBS}
    assert ours == theirs
    assert "/srv/gone" not in ours and "/bin/ls" not in ours and "/opq/x" not in ours and "/opq/old" not in ours
    assert ours["/srv/setuid"][1] == 0o4755 and ours["/srv/a/one"][2:4] == (5, 6)
    two, two_link = (os.lstat(bundle / "rootfs" / "srv" / name) for name in ("two", "two-link"))
    assert two.st_ino == two_link.st_ino, "the hardlink became a copy"
    assert runc_run(bundle) == "one\ny\n"
