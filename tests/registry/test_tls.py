"""TLS material from certs.d directories, and the plain-HTTP fallback only when TLS is turned off."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from imagetool.errors import RegistryError
from imagetool.registry import http
from imagetool.registry.client import Client, ClientOptions
from tests.lib.registry import Registry

pytestmark = pytest.mark.usefixtures("registry_env")


def test_certs_d_directory_supplies_the_ca(tls_registry: Registry, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    certs_d = tmp_path / "certs.d"
    (certs_d / tls_registry.host).mkdir(parents=True)
    shutil.copy(str(tls_registry.ca_file), certs_d / tls_registry.host / "ca.crt")
    with pytest.raises(RegistryError) as err:
        Client(tls_registry.host, ClientOptions(creds=(str(tls_registry.username), str(tls_registry.password)))).ping()
    assert "certificate verify failed" in str(err.value)
    monkeypatch.setattr(http, "CERTS_D", (str(certs_d),))
    c = Client(tls_registry.host, ClientOptions(creds=(str(tls_registry.username), str(tls_registry.password))))
    c.check_login()
    assert c.base == f"https://{tls_registry.host}"


def test_client_pair_is_picked_up_from_the_cert_dir(tmp_path: Path) -> None:
    (tmp_path / "client.cert").write_text("x")
    (tmp_path / "client.key").write_text("y")
    (tmp_path / "ca.crt").write_text("")
    tls = http.TLSConfig.for_host("reg.example:5000", None, str(tmp_path))
    assert tls.cert == (str(tmp_path / "client.cert"), str(tmp_path / "client.key"))
    assert tls.verify is True and tls.cas == (str(tmp_path / "ca.crt"),) and not tls.insecure


def test_plain_http_only_when_tls_verification_is_off(plain_registry: Registry) -> None:
    with pytest.raises(RegistryError):
        Client(plain_registry.host, ClientOptions()).ping()
    c = Client(plain_registry.host, ClientOptions(tls_verify=False))
    assert c.ping() == f"http://{plain_registry.host}"


def test_unverified_tls_when_verification_is_off(tls_registry: Registry) -> None:
    c = Client(tls_registry.host, ClientOptions(tls_verify=False))
    assert c.ping() == f"https://{tls_registry.host}"  # HTTPS is still preferred


def test_mutual_tls_with_a_client_certificate(mtls_registry: Registry, tmp_path: Path) -> None:
    from tests.lib.cli import imagetool, one_line_error
    from tests.lib.images import random_image

    desc = random_image(tmp_path / "src", "v1", n_layers=1, seed=99)
    ca_only = tmp_path / "ca-only"
    ca_only.mkdir()
    shutil.copy(str(mtls_registry.ca_file), ca_only / "ca.crt")
    line = one_line_error(imagetool("copy", "-q", "--dest-cert-dir", str(ca_only), f"oci:{tmp_path}/src:v1",
                                    mtls_registry.ref("mtls/img:v1"), check=False))
    assert mtls_registry.host in line
    imagetool("copy", "-q", "--dest-cert-dir", str(mtls_registry.cert_dir), f"oci:{tmp_path}/src:v1",
              mtls_registry.ref("mtls/img:v1"))
    out = imagetool("inspect", "--cert-dir", str(mtls_registry.cert_dir), "--format", "{{.Digest}}",
                    mtls_registry.ref("mtls/img:v1"))
    assert out.stdout.strip() == str(desc.digest)


def test_certs_d_client_pair_for_mutual_tls(mtls_registry: Registry, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """/etc/containers/certs.d/<host:port>/ with ca.crt, client.cert and client.key: the registry demands the pair."""
    host_dir = tmp_path / "certs.d" / mtls_registry.host
    host_dir.mkdir(parents=True)
    shutil.copy(str(mtls_registry.ca_file), host_dir / "ca.crt")
    monkeypatch.setattr(http, "CERTS_D", (str(tmp_path / "certs.d"),))
    with pytest.raises(RegistryError) as err:  # the CA alone: the handshake is refused
        Client(mtls_registry.host, ClientOptions()).ping()
    assert mtls_registry.host in str(err.value)
    for name in ("client.cert", "client.key"):
        shutil.copy(str(Path(str(mtls_registry.cert_dir)) / name), host_dir / name)
    c = Client(mtls_registry.host, ClientOptions())
    assert c.tls.cert == (str(host_dir / "client.cert"), str(host_dir / "client.key"))
    assert c.ping() == f"https://{mtls_registry.host}"
    from imagetool.digest import Digest

    assert c.head_blob("mtls/certsd", Digest.of(b"absent")) is None  # an API call over the mutual-TLS session


def test_certs_d_cas_are_loaded_without_a_bundle_file_in_tmp(tls_registry: Registry, tmp_path: Path) -> None:
    """A CA bundle written to a predictable name in /tmp could be planted by another local user."""
    from tests.lib.cli import imagetool

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    certs = tmp_path / "certs"
    certs.mkdir()
    shutil.copy(str(tls_registry.ca_file), certs / "ca.crt")
    (certs / "empty.crt").write_text("")  # an empty file is skipped, as before
    proc = imagetool("list-tags", "--cert-dir", str(certs), "--creds", tls_registry.creds,
                     f"docker://{tls_registry.host}/never/pushed", check=False, env={"TMPDIR": str(tmp)})
    assert "NAME_UNKNOWN" in proc.stderr, proc.stderr  # TLS verified: the registry answered
    assert list(tmp.iterdir()) == []
    tls = http.TLSConfig.for_host(tls_registry.host, None, str(certs))
    assert tls.cas == (str(certs / "ca.crt"), str(certs / "empty.crt"))


def test_a_certificate_for_another_name_is_reported_in_full(tmp_path: Path) -> None:
    from tests.lib.cli import imagetool, one_line_error
    from tests.lib.fakeserver import FakeServer

    server = FakeServer(lambda m, p: (200, {}, b"{}"), tls_names=("registry.example",), ca_dir=tmp_path / "ca")
    try:
        proc = imagetool("inspect", "--cert-dir", str(tmp_path / "ca"), f"docker://{server.host}/x/y",
                         check=False, timeout=60)
        line = one_line_error(proc)
        assert line.endswith("IP address mismatch, certificate is not valid for '127.0.0.1'"), line
    finally:
        server.close()
