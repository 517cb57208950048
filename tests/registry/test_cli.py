"""login / logout / list-tags / delete through the real command line."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.lib.cli import imagetool, one_line_error
from tests.lib.images import random_image
from tests.lib.registry import Registry

pytestmark = pytest.mark.usefixtures("registry_env")


@pytest.mark.parametrize("which", ["tls_registry", "token_registry"])
def test_login_logout_round_trip(which: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    reg: Registry = request.getfixturevalue(which)
    auth = Path(os.environ["XDG_RUNTIME_DIR"]) / "containers" / "auth.json"
    random_image(tmp_path / "src", "v1", n_layers=1, seed=81)
    # wrong password: one clear line, nothing written
    line = one_line_error(imagetool("login", *reg.tls_flags(), "-u", str(reg.username), "-p", "bad-pass", reg.host,
                                    check=False))
    assert reg.host in line and "bad-pass" not in line
    assert not auth.exists()
    out = imagetool("login", *reg.tls_flags(), "-u", str(reg.username), "--password-stdin", reg.host,
                    input=f"{reg.password}\n".encode())
    assert "Login Succeeded" in out.stdout and str(reg.password) not in out.stdout + out.stderr
    assert stat.S_IMODE(auth.stat().st_mode) == 0o600
    assert imagetool("login", "--get-login", reg.host).stdout.strip() == reg.username
    # the stored credentials are used without --creds
    imagetool("copy", "-q", *reg.tls_flags("dest-"), f"oci:{tmp_path}/src:v1", reg.ref("login/img:v1"))
    imagetool("logout", reg.host)
    assert reg.host not in json.loads(auth.read_text()).get("auths", {})
    proc = imagetool("copy", "-q", *reg.tls_flags("dest-"), f"oci:{tmp_path}/src:v1", reg.ref("login/img:v2"),
                     check=False)
    assert "authentication required" in one_line_error(proc)
    assert "not logged into" in one_line_error(imagetool("logout", reg.host, check=False))


def test_authfile_flag_and_env(tls_registry: Registry, tmp_path: Path) -> None:
    reg = tls_registry
    authfile = tmp_path / "my-auth.json"
    imagetool("login", *reg.tls_flags(), "--authfile", str(authfile), "-u", str(reg.username), "-p",
              str(reg.password), reg.host)
    assert reg.host in json.loads(authfile.read_text())["auths"]
    random_image(tmp_path / "src", "v1", n_layers=1, seed=82)
    imagetool("copy", "-q", *reg.tls_flags("dest-"), f"oci:{tmp_path}/src:v1", reg.ref("authfile/img:v1"),
              env={"REGISTRY_AUTH_FILE": str(authfile)})
    tags = json.loads(imagetool("list-tags", *reg.tls_flags(), "--authfile", str(authfile),
                                reg.ref("authfile/img")).stdout)
    assert tags == {"Repository": f"{reg.host}/authfile/img", "Tags": ["v1"]}
    proc = imagetool("list-tags", *reg.tls_flags(), "--no-creds", "--authfile", str(authfile),
                     reg.ref("authfile/img"), check=False)
    assert "authentication required" in one_line_error(proc)
    out = imagetool("inspect", *reg.tls_flags(), "--authfile", str(authfile), "--format", "{{.Name}}",
                    reg.ref("authfile/img:v1"))
    assert out.stdout.strip() == f"{reg.host}/authfile/img"
    proc = imagetool("inspect", *reg.tls_flags(), "--no-creds", "--authfile", str(authfile),
                     reg.ref("authfile/img:v1"), check=False)
    assert "authentication required" in one_line_error(proc)


def test_list_tags_past_a_hundred(plain_registry: Registry, tmp_path: Path) -> None:
    from imagetool.registry.client import Client, ClientOptions

    random_image(tmp_path / "src", "v1", n_layers=1, seed=83)
    imagetool("copy", "-q", "--dest-tls-verify=false", f"oci:{tmp_path}/src:v1", plain_registry.ref("tags/many:t000"))
    c = Client(plain_registry.host, ClientOptions(tls_verify=False))
    raw, mt = c.get_manifest("tags/many", "t000")
    want = {f"t{i:03d}" for i in range(125)}
    for tag in sorted(want - {"t000"}):
        c.put_manifest("tags/many", tag, raw, mt)
    out = json.loads(imagetool("list-tags", "--tls-verify=false", plain_registry.ref("tags/many")).stdout)
    assert out["Repository"] == f"{plain_registry.host}/tags/many"
    assert set(out["Tags"]) == want and len(out["Tags"]) == 125
    assert "tag" in one_line_error(imagetool("list-tags", "--tls-verify=false", plain_registry.ref("tags/many:x"),
                                             check=False))


def test_registry_token_flag_is_sent_as_bearer(token_registry: Registry, tmp_path: Path) -> None:
    reg = token_registry
    assert reg.issuer is not None
    desc = random_image(tmp_path / "src", "v1", n_layers=1, seed=84)
    imagetool("copy", "-q", "--dest-tls-verify=false", *reg.creds_flags("dest-"), f"oci:{tmp_path}/src:v1",
              reg.ref("bearer/img:v1"))
    token = reg.issuer.make_token("tester", ["repository:bearer/img:pull"])
    n = len(reg.issuer.requests)
    out = imagetool("inspect", "--tls-verify=false", "--registry-token", token, "--format", "{{.Digest}}",
                    reg.ref("bearer/img:v1"))
    assert out.stdout.strip() == str(desc.digest)
    assert len(reg.issuer.requests) == n  # the given token was used; none was fetched
    line = one_line_error(imagetool("inspect", "--tls-verify=false", "--registry-token", "not-a-token",
                                    reg.ref("bearer/img:v1"), check=False))
    assert "401" in line and "not-a-token" not in line
