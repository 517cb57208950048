"""A build FROM a Debian base (debootstrap) whose RUN installs a package with apt-get."""

from __future__ import annotations

from pathlib import Path

from tests.lib.bundles import runc_run, umoci_unpack
from tests.lib.cli import imagetool

DOCKERFILE = """\
FROM {base}
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends hello >/dev/null \\
    && rm -rf /var/lib/apt/lists/*
CMD ["hello"]
"""


def test_apt_get_install_in_a_run_step(debian_image: str, tmp_path: Path, local_store: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE.format(base=debian_image))
    out = imagetool("build", "-t", "localhost/hello:1", str(ctx), timeout=900).stdout
    assert "STEP 2/3: RUN apt-get update" in out
    assert imagetool("run", "--rm", "localhost/hello:1").stdout == "Hello, world!\n"
    status = imagetool("run", "--rm", "localhost/hello:1", "dpkg-query", "-W", "-f=${Status}", "hello").stdout
    assert status == "install ok installed"
    bundle = umoci_unpack(local_store, "localhost/hello:1", tmp_path / "bundle")
    assert runc_run(bundle) == "Hello, world!\n"
    # the package list was removed in the same step, so the layer holds no apt lists
    assert not list((bundle / "rootfs/var/lib/apt/lists").glob("*_Packages"))
