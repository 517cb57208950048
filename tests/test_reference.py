from __future__ import annotations

import pytest

from imagetool.errors import InvalidReference
from imagetool.reference import parse, policy_namespaces


@pytest.mark.parametrize("text,full,familiar", [
    ("busybox", "docker.io/library/busybox", "busybox"),
    ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
    ("library/busybox", "docker.io/library/busybox", "busybox"),
    ("index.docker.io/library/x:1", "docker.io/library/x:1", "x:1"),
    ("user/app", "docker.io/user/app", "user/app"),
    ("localhost/app:1", "localhost/app:1", "localhost/app:1"),
    ("localhost:5000/x/y:t", "localhost:5000/x/y:t", "localhost:5000/x/y:t"),
    ("127.0.0.1:5000/a", "127.0.0.1:5000/a", "127.0.0.1:5000/a"),
    ("quay.io/a/b@sha256:" + "a" * 64, "quay.io/a/b@sha256:" + "a" * 64, "quay.io/a/b@sha256:" + "a" * 64),
    ("a/b:t@sha256:" + "b" * 64, "docker.io/a/b:t@sha256:" + "b" * 64, "a/b:t@sha256:" + "b" * 64),
])
def test_normalisation(text: str, full: str, familiar: str) -> None:
    ref = parse(text)
    assert str(ref) == full
    assert ref.familiar() == familiar


@pytest.mark.parametrize("text", ["", "a b", "x:", "-bad", "foo@sha256:zz", "foo/Bar", "a//b", "x:" + "t" * 129,
                                  "foo@md5:" + "a" * 32, "host:port/x", "a/b:c:d"])
def test_malformed_references(text: str) -> None:
    with pytest.raises(InvalidReference):
        parse(text)


def test_policy_scopes_most_specific_first() -> None:
    scopes = policy_namespaces(parse("registry.example.com:5000/ns/repo:tag"))
    assert scopes == ["registry.example.com:5000/ns/repo:tag", "registry.example.com:5000/ns/repo",
                      "registry.example.com:5000/ns", "registry.example.com:5000", "*.example.com", "*.com"]


def test_short_names_look_in_localhost_first() -> None:
    from imagetool.reference import is_short, local_candidates

    assert [str(r) for r in local_candidates("app")] == ["localhost/app:latest", "docker.io/library/app:latest"]
    assert [str(r) for r in local_candidates("team/app:1")] == ["localhost/team/app:1", "docker.io/team/app:1"]
    for qualified in ("localhost/app", "quay.io/x/y:2", "docker.io/library/busybox", "host:5000/a"):
        assert not is_short(qualified) and len(local_candidates(qualified)) == 1
    assert is_short("busybox@sha256:" + "a" * 64) and not is_short("Registry/x")  # an upper-case first part is a host
