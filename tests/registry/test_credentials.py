"""Where credentials come from (auth.json, docker config.json, credential helpers) and how login writes them."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from imagetool.registry import credentials
from tests.lib.registry import Registry

pytestmark = pytest.mark.usefixtures("registry_env")


def _auth(user: str, password: str) -> dict[str, str]:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_lookup_order_and_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    (home / ".docker" / "config.json").write_text(json.dumps({"auths": {
        "https://index.docker.io/v1/": _auth("hubuser", "hubpass"),
        "reg.example:5000": _auth("docker-user", "docker-pass"),
    }}))
    assert credentials.lookup("docker.io") == ("hubuser", "hubpass")
    assert credentials.lookup("reg.example:5000") == ("docker-user", "docker-pass")
    # $XDG_RUNTIME_DIR/containers/auth.json wins over the docker config; the most specific key wins
    runtime = Path(os.environ["XDG_RUNTIME_DIR"])
    (runtime / "containers").mkdir(parents=True, exist_ok=True)
    (runtime / "containers" / "auth.json").write_text(json.dumps({"auths": {
        "reg.example:5000": _auth("podman-user", "p1"),
        "reg.example:5000/team/app": _auth("team-user", "p2"),
    }}))
    assert credentials.lookup("reg.example:5000") == ("podman-user", "p1")
    assert credentials.lookup("reg.example:5000", "team/app") == ("team-user", "p2")
    assert credentials.lookup("reg.example:5000", "other/app") == ("podman-user", "p1")
    # an explicit auth file (flag or $REGISTRY_AUTH_FILE) is the only one read
    only = tmp_path / "only.json"
    only.write_text(json.dumps({"auths": {}}))
    assert credentials.lookup("reg.example:5000", authfile=str(only)) is None
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(only))
    assert credentials.lookup("reg.example:5000") is None


def _helper(bin_dir: Path, name: str, store: Path) -> None:
    """A real docker-credential-NAME program speaking the helper protocol, backed by a JSON file."""
    script = bin_dir / f"docker-credential-{name}"
    script.write_text(f"""#!/usr/bin/env python3
import json, sys
path = {str(store)!r}
try:
    data = json.load(open(path))
except FileNotFoundError:
    data = {{}}
action = sys.argv[1]
if action == "get":
    host = sys.stdin.read().strip()
    if host not in data:
        print("credentials not found in native keychain"); sys.exit(1)
    print(json.dumps({{"ServerURL": host, "Username": data[host][0], "Secret": data[host][1]}}))
elif action == "store":
    doc = json.load(sys.stdin)
    data[doc["ServerURL"]] = [doc["Username"], doc["Secret"]]
    json.dump(data, open(path, "w"))
elif action == "erase":
    data.pop(sys.stdin.read().strip(), None)
    json.dump(data, open(path, "w"))
""")
    script.chmod(0o755)


def test_cred_helpers_and_creds_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _helper(bin_dir, "testhelper", tmp_path / "helper-store.json")
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"credHelpers": {"helped.example": "testhelper"}, "credsStore": "testhelper"}))
    assert credentials.lookup("helped.example", authfile=str(cfg)) is None
    credentials.store("helped.example", "alice", "pw1", authfile=str(cfg))
    credentials.store("stored.example", "bob", "pw2", authfile=str(cfg))
    assert credentials.lookup("helped.example", authfile=str(cfg)) == ("alice", "pw1")
    assert credentials.lookup("stored.example", authfile=str(cfg)) == ("bob", "pw2")
    assert "pw1" not in cfg.read_text()  # the helper holds the secret, not the file
    assert credentials.erase("helped.example", authfile=str(cfg))
    assert credentials.lookup("helped.example", authfile=str(cfg)) is None


def test_store_writes_mode_0600_and_keeps_other_entries(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "auth.json"
    credentials.store("a.example", "u1", "p1", authfile=str(path))
    credentials.store("b.example", "u2", "p2", authfile=str(path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert set(doc["auths"]) == {"a.example", "b.example"}
    assert credentials.erase("a.example", authfile=str(path))
    assert not credentials.erase("a.example", authfile=str(path))
    assert credentials.lookup("b.example", authfile=str(path)) == ("u2", "p2")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def _store_many(authfile: str, worker: int, count: int, start: Any) -> None:
    start.wait()
    for i in range(count):
        credentials.store(f"reg{worker}.example/ns{i}", f"user{worker}", f"pw{i}", authfile)


def test_concurrent_writers_lose_no_entry(tmp_path: Path) -> None:
    """store() reads, changes and replaces the file: without a lock two writers drop each other's entries."""
    import multiprocessing

    (tmp_path / "a").mkdir()
    authfile = str(tmp_path / "a" / "auth.json")
    mp = multiprocessing.get_context("fork")
    start = mp.Barrier(6)
    procs = [mp.Process(target=_store_many, args=(authfile, w, 25, start)) for w in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    auths = json.loads(Path(authfile).read_text())["auths"]
    assert len(auths) == 6 * 25
    assert stat.S_IMODE(os.stat(authfile).st_mode) == 0o600
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["auth.json", "auth.json.lock"]  # no temp files left


def test_concurrent_logins_to_different_registries_all_stay(plain_registry: Registry, tmp_path: Path) -> None:
    import subprocess
    import sys

    authfile = tmp_path / "auth.json"
    procs = [subprocess.Popen([sys.executable, "-m", "imagetool", "login", "--tls-verify=false", "--authfile",
                               str(authfile), "-u", f"user{i}", "-p", f"pw{i}", f"{plain_registry.host}/team{i}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(10)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    auths = json.loads(authfile.read_text())["auths"]
    assert sorted(auths) == sorted(f"{plain_registry.host}/team{i}" for i in range(10))
    for i in range(10):
        assert credentials.lookup(plain_registry.host, f"team{i}", authfile=str(authfile)) == (f"user{i}", f"pw{i}")
    subprocess.run([sys.executable, "-m", "imagetool", "logout", "--authfile", str(authfile),
                    f"{plain_registry.host}/team3"], check=True, capture_output=True)
    assert f"{plain_registry.host}/team3" not in json.loads(authfile.read_text())["auths"]
