"""WWW-Authenticate parsing, and the token flow against the real registry's token auth."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest

from imagetool.digest import Digest
from imagetool.registry.auth import parse_challenges, pick_challenge
from imagetool.registry.client import Client, ClientOptions
from imagetool.registry.errors import Unauthorized
from imagetool.registry.upload import BlobUploader
from tests.lib.cli import imagetool, one_line_error
from tests.lib.fakeserver import FakeServer
from tests.lib.registry import Registry

pytestmark = pytest.mark.usefixtures("registry_env")


def test_parse_challenges_handles_quotes_commas_and_several_schemes() -> None:
    chals = parse_challenges('Bearer realm="https://auth.example/token",service="registry.example",'
                             'scope="repository:a/b:pull,push repository:c:pull", Basic realm="x \\"y\\""')
    assert [c.scheme for c in chals] == ["bearer", "basic"]
    assert chals[0].params == {"realm": "https://auth.example/token", "service": "registry.example",
                               "scope": "repository:a/b:pull,push repository:c:pull"}
    assert chals[1].params == {"realm": 'x "y"'}
    assert pick_challenge('Basic realm="r"').scheme == "basic"  # type: ignore[union-attr]
    assert pick_challenge("Bearer realm=tok,error=insufficient_scope").params["error"] == "insufficient_scope"  # type: ignore[union-attr]
    assert pick_challenge("") is None


def _client(reg: Registry, creds: bool = True) -> Client:
    return Client(reg.host, ClientOptions(tls_verify=False if not reg.tls else None, cert_dir=reg.cert_dir,
                                          creds=(str(reg.username), str(reg.password)) if creds else None))


def test_token_scopes_accumulate_and_tokens_are_cached(token_registry: Registry) -> None:
    issuer = token_registry.issuer
    assert issuer is not None
    c = _client(token_registry)
    data = b"token-cache-blob"
    before = len(issuer.requests)
    BlobUploader(c, "tok/a").upload(io.BytesIO(data), Digest.of(data), len(data))
    assert c.head_blob("tok/a", Digest.of(data)) == len(data)
    after_first = len(issuer.requests)
    assert after_first - before == 1  # push, then HEAD: one token covers both
    # a second repository: a new token asked for both repositories' scopes
    assert c.head_blob("tok/b", Digest.of(data)) is None
    last = issuer.requests[-1]
    assert set(last["scope"]) == {"repository:tok/a:pull,push", "repository:tok/b:pull"}  # type: ignore[arg-type]
    # the mount from a to b works with the accumulated token, and no further token is needed for a
    assert c.mount_blob("tok/b", Digest.of(data), "tok/a")
    n = len(issuer.requests)
    assert c.head_blob("tok/a", Digest.of(data)) == len(data)
    assert len(issuer.requests) == n


def test_a_rejected_token_is_refreshed_once(token_registry: Registry) -> None:
    issuer = token_registry.issuer
    assert issuer is not None
    c = _client(token_registry)
    assert c.head_blob("tok/refresh", Digest.of(b"x")) is None
    for t in c.auth._tokens:  # the registry stops accepting the token we hold
        t.value = t.value[:-4] + "AAAA"
    n = len(issuer.requests)
    assert c.head_blob("tok/refresh", Digest.of(b"x")) is None
    assert len(issuer.requests) == n + 1


def test_anonymous_token_can_pull_but_not_push(token_registry: Registry) -> None:
    c = _client(token_registry, creds=False)
    assert c.head_blob("tok/anon", Digest.of(b"y")) is None  # pull scope granted to anonymous
    with pytest.raises(Unauthorized) as err:
        BlobUploader(c, "tok/anon").upload(io.BytesIO(b"y"), Digest.of(b"y"), 1)
    assert "no credentials" in str(err.value)


def test_basic_auth_over_tls_and_wrong_password(tls_registry: Registry) -> None:
    good = _client(tls_registry)
    good.check_login()
    bad = Client(tls_registry.host, ClientOptions(cert_dir=tls_registry.cert_dir, creds=("tester", "wrong")))
    with pytest.raises(Unauthorized) as err:
        bad.check_login()
    assert "invalid username/password" in str(err.value) and "wrong" not in str(err.value)


def test_credentials_are_not_sent_over_plain_http_to_a_remote_host() -> None:
    c = Client("registry.example.com:5000", ClientOptions(creds=("u", "p")))
    assert not c.may_send_secret("http://registry.example.com:5000/v2/")
    assert c.may_send_secret("https://registry.example.com:5000/v2/")
    assert not c.may_send_secret("http://127.0.0.1:5000/v2/")  # loopback is no exception: the user says so
    insecure = Client("registry.example.com:5000", ClientOptions(creds=("u", "p"), tls_verify=False))
    assert insecure.may_send_secret("http://registry.example.com:5000/v2/")


def test_an_expired_token_is_replaced_before_use(token_registry: Registry) -> None:
    issuer = token_registry.issuer
    assert issuer is not None
    c = _client(token_registry)
    assert c.head_blob("tok/expiry", Digest.of(b"z")) is None
    n = len(issuer.requests)
    assert c.head_blob("tok/expiry", Digest.of(b"z")) is None
    assert len(issuer.requests) == n  # cached
    for t in c.auth._tokens:
        t.expires = 0.0
    assert c.head_blob("tok/expiry", Digest.of(b"z")) is None
    assert len(issuer.requests) == n + 1


# -- where credentials may travel: the token realm a registry names


def _challenging_registry(realm: str, tmp_path: Path, tls: bool) -> FakeServer:
    """A registry whose /v2/ demands a token from `realm` (anything else: 404)."""
    def answer(method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        if path.startswith("/v2/"):
            return 401, {"WWW-Authenticate": f'Bearer realm="{realm}",service="x"'}, b"{}"
        return 404, {}, b""
    return FakeServer(answer, tls_names=("127.0.0.1",) if tls else (), ca_dir=tmp_path / "ca")


def _token_server() -> FakeServer:
    return FakeServer(lambda method, path: (200, {"Content-Type": "application/json"}, b'{"token":"t"}'))


@pytest.mark.parametrize("scheme", ["ftp", "file", "gopher"])
def test_a_token_realm_that_is_not_http_is_refused(scheme: str, tmp_path: Path) -> None:
    """skopeo refuses such a realm; sending an HTTP GET with Basic credentials to its host leaks them."""
    token = _token_server()
    reg = _challenging_registry(f"{scheme}://{token.host}/token", tmp_path, tls=True)
    try:
        proc = imagetool("inspect", "--cert-dir", str(tmp_path / "ca"), "--creds", "someone:secret-pw",
                         f"docker://{reg.host}/some/image", check=False, timeout=60)
        line = one_line_error(proc)
        assert f"{scheme}://{token.host}/token" in line and "http" in line, line
        assert token.seen == []
    finally:
        token.close()
        reg.close()


def test_credentials_are_not_sent_to_a_plain_http_realm_of_an_https_registry(tmp_path: Path) -> None:
    token = _token_server()
    realm = f"http://{token.host}/token"
    reg = _challenging_registry(realm, tmp_path, tls=True)
    try:
        proc = imagetool("inspect", "--cert-dir", str(tmp_path / "ca"), "--creds", "someone:secret-pw",
                         f"docker://{reg.host}/some/image", check=False, timeout=60)
        line = one_line_error(proc)
        assert realm in line and "plain HTTP" in line, line
        assert [s for s in token.seen if s.authorization] == []
        # marked insecure by the user, the host may use a plain-HTTP realm
        proc = imagetool("inspect", "--tls-verify=false", "--creds", "someone:secret-pw",
                         f"docker://{reg.host}/some/image", check=False, timeout=60)
        basic = "Basic " + base64.b64encode(b"someone:secret-pw").decode()
        assert [s.authorization for s in token.seen][-1:] == [basic]
    finally:
        token.close()
        reg.close()
