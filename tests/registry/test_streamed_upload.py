"""A large blob streams to the registry in one PATCH; cut off mid-way, the upload goes on from what the registry
holds, the lost bytes read again from the source (a file, bytes in memory, a registry's blob). A proxy in front
of the real registry cuts the request body after a given number of bytes.

Distribution gives up an upload whose size is not the one its last answer named (it cancels the session at
the status request after a cut body): the blob then goes again from its start in a new session, read again
from the source.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Iterator

import pytest

from imagetool.digest import Digest, VerifyingReader
from imagetool.registry.client import Client, ClientOptions
from imagetool.registry.upload import CHUNK_SIZE, BlobUploader
from tests.lib.cli import imagetool
from tests.lib.faultproxy import FaultProxy
from tests.lib.images import random_image
from tests.lib.registry import Registry

pytestmark = pytest.mark.usefixtures("registry_env")
CUT = 3 * (1 << 20) + 12345


@pytest.fixture
def proxy(plain_registry: Registry) -> Iterator[FaultProxy]:
    p = FaultProxy(plain_registry.host)
    yield p
    p.close()


def _client(proxy: FaultProxy) -> Client:
    return Client(proxy.host, ClientOptions(tls_verify=False, retry_delay=0.05))


def _uploads(proxy: FaultProxy) -> list[tuple[str, int, str]]:
    return [(r.method, r.body_bytes, r.fault) for r in proxy.records if "/blobs/uploads/" in r.path]


@pytest.mark.parametrize("known_size", [True, False], ids=["content-length", "chunked-encoding"])
def test_a_streamed_patch_cut_off_goes_on_from_what_the_registry_holds(proxy: FaultProxy, plain_registry: Registry,
                                                                       tmp_path: Path, known_size: bool) -> None:
    data = os.urandom(3 * CHUNK_SIZE + 777)
    digest = Digest.of(data)
    (tmp_path / "blob").write_bytes(data)
    proxy.add("PATCH", r"/blobs/uploads/", cut_request_after=CUT)
    with open(tmp_path / "blob", "rb") as f:
        # the copy's digest check in front of the file, as a push from a layout has it
        stream = VerifyingReader(f, digest, len(data))
        up = BlobUploader(_client(proxy), "streamed/cut")
        got = up.upload(stream, digest if known_size else None, len(data) if known_size else None)
        assert got == (digest, len(data))
        assert stream.verified  # the stream itself was read once, to its end
    # the registry got CUT bytes and then gave the session up: a new one, the blob again from the file
    assert _uploads(proxy) == [("POST", 0, ""), ("PATCH", CUT, "cut_request"), ("GET", 0, ""), ("POST", 0, ""),
                               ("PATCH", len(data), ""), ("PUT", 0, "")]
    assert [r.status for r in proxy.records if r.method == "GET" and "/uploads/" in r.path] == [404]
    back = plain_registry.raw_get(f"/v2/streamed/cut/blobs/{digest}")
    assert back.status_code == 200 and back.content == data


def test_a_streamed_patch_cut_twice_from_bytes_in_memory(proxy: FaultProxy, plain_registry: Registry) -> None:
    data = os.urandom(2 * CHUNK_SIZE + 5)
    digest = Digest.of(data)
    proxy.add("PATCH", r"/blobs/uploads/", cut_request_after=CUT, times=2)
    assert BlobUploader(_client(proxy), "streamed/twice").upload(io.BytesIO(data), digest, len(data)) == \
        (digest, len(data))
    patches = [(r.body_bytes, r.fault) for r in proxy.records if r.method == "PATCH"]
    assert patches == [(CUT, "cut_request"), (CUT, "cut_request"), (len(data), "")]
    back = plain_registry.raw_get(f"/v2/streamed/twice/blobs/{digest}")
    assert back.status_code == 200 and back.content == data


def test_a_registry_to_registry_copy_cut_off_reads_the_lost_bytes_again_from_the_source(
        proxy: FaultProxy, plain_registry: Registry, tmp_path: Path) -> None:
    from tests.lib.registry import start_registry, stop_registry

    desc = random_image(tmp_path / "src", "v1", n_layers=1, size=9_000_000, seed=91, compression=None)
    imagetool("copy", "-q", "--dest-tls-verify=false", f"oci:{tmp_path}/src:v1",
              plain_registry.ref("streamed/src:v1"))
    other = start_registry(tmp_path / "other", "other")  # another registry: nothing to mount from
    dest = FaultProxy(other.host)
    try:
        dest.add("PATCH", r"/blobs/uploads/", cut_request_after=CUT)
        imagetool("copy", "-q", "--retry-delay", "0.05", "--src-tls-verify=false", "--dest-tls-verify=false",
                  proxy.ref("streamed/src:v1"), dest.ref("streamed/dst:v1"))
        patches = [(r.body_bytes, r.fault) for r in dest.records if r.method == "PATCH"]
        assert len(patches) == 2 and patches[0] == (CUT, "cut_request") and patches[1][0] > 9_000_000
        layer_gets = [r for r in proxy.records if r.method == "GET" and "/blobs/sha256:" in r.path
                      and r.sent > 1_000_000]
        # the layer read once whole; what had gone out before the cut (the new session starts from 0) read once
        # more from the start, on a request of its own
        assert [(g.status, g.range) for g in layer_gets] == [(200, ""), (200, "")]
        r = other.raw_get("/v2/streamed/dst/manifests/v1")
        assert r.status_code == 200 and r.headers["Docker-Content-Digest"] == str(desc.digest)
    finally:
        dest.close()
        stop_registry(other)


def test_a_source_that_fails_mid_stream_fails_the_upload_and_leaves_nothing(plain_registry: Registry) -> None:
    data = os.urandom(2 * CHUNK_SIZE + 5)
    digest = Digest.of(data)
    wrong = bytearray(data)
    wrong[CHUNK_SIZE] ^= 1  # the file's bytes are not the blob's: the digest check fails at the end
    from imagetool.errors import DigestMismatch

    stream = VerifyingReader(io.BytesIO(bytes(wrong)), digest, len(data))
    client = Client(plain_registry.host, ClientOptions(tls_verify=False, retry_delay=0.05))
    with pytest.raises(DigestMismatch):
        BlobUploader(client, "streamed/bad").upload(stream, digest, len(data))
    assert plain_registry.raw_get(f"/v2/streamed/bad/blobs/{digest}").status_code == 404


def test_a_file_behind_the_copys_wrappers_is_read_again_from_an_offset(tmp_path: Path) -> None:
    import tarfile
    import tempfile

    from imagetool import compression
    from imagetool.registry.rereads import rereader

    data = os.urandom(300_000)
    (tmp_path / "blob").write_bytes(b"x" * 1000 + data)  # the blob starts 1000 bytes into the file
    with open(tmp_path / "blob", "rb") as f:
        f.seek(1000)
        verified = VerifyingReader(f, Digest.of(data), len(data))
        _, stream = compression.sniff(verified)  # peeks at the head, then passes it on
        reread = rereader(stream)
        assert reread is not None
        assert stream.read(5000) == data[:5000]
        assert reread(123_456).read(1000) == data[123_456:124_456]
        assert stream.read(5000) == data[5000:10_000]  # the stream's own position did not move
    with tempfile.TemporaryFile(dir=tmp_path) as spool:  # a spooled blob (a digest learnt by writing it)
        spool.write(data)
        spool.seek(0)
        again = rereader(spool)
        assert again is not None and again(7).read(10) == data[7:17]
    # a tar member's file number is the archive's: not read again (the offsets would be wrong)
    with tarfile.open(tmp_path / "a.tar", "w") as tar:
        tar.add(tmp_path / "blob", arcname="blob")
    with tarfile.open(tmp_path / "a.tar") as tar:
        member = tar.extractfile("blob")
        assert member is not None and rereader(member) is None
    assert rereader(iter([b"a pipe"])) is None  # type: ignore[arg-type]


def test_a_registry_blob_behind_the_digest_check_is_read_again_from_an_offset(plain_registry: Registry) -> None:
    """What a registry that keeps a cut upload's bytes (and resumes from its offset) gets: a Range request."""
    from imagetool.registry.rereads import rereader

    data = os.urandom(2 * CHUNK_SIZE + 99)
    digest = Digest.of(data)
    client = Client(plain_registry.host, ClientOptions(tls_verify=False))
    BlobUploader(client, "streamed/ranged").upload(io.BytesIO(data), digest, len(data))
    stream = VerifyingReader(client.get_blob("streamed/ranged", digest, len(data)), digest, len(data))
    reread = rereader(stream)
    assert reread is not None
    assert stream.read(1000) == data[:1000]
    again = reread(CHUNK_SIZE + 5)
    try:
        assert b"".join(iter(lambda: again.read(1 << 20), b"")) == data[CHUNK_SIZE + 5:]
    finally:
        again.close()  # type: ignore[attr-defined]
    assert b"".join(iter(lambda: stream.read(1 << 20), b"")) == data[1000:] and stream.verified
