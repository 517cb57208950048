"""Rootless builds and runs keep the image's owners: layers carry container-side ids, never host-side ones.

An unprivileged user with 100000:65536 subordinate ranges (a typical CI runner) builds the
same Dockerfile as root: users, chowns (1234:5678, 65000), setuid and setgid bits, a user.*
xattr, a file capability, a whiteout and COPY --chown. Both builds must give the same layer
digests and image ID, a rootless container must see the owners the image says, other tools
(skopeo, umoci, runc) must read the rootless-built image as any other, and nothing the user
made (files of subordinate ids included) may stay behind in the store or temp dirs.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from imagetool.userns import subordinate
from tests.lib.bundles import runc_run, umoci_unpack, write_tree
from tests.lib.cli import imagetool, one_line_error, skopeo, tool
from tests.lib.images import busybox_files
from tests.lib.probes import Prober, Way, ways
from tests.lib.registry import Registry
from tests.lib.rootless import SUB_COUNT, SUB_START, RootlessUser

#: host programs the RUN step needs (busybox has no setfattr/setcap), with the libraries they load
EXTRA_PROGRAMS = {"usr/bin/setfattr": "/usr/bin/setfattr", "usr/sbin/setcap": "/usr/sbin/setcap",
                  "lib/x86_64-linux-gnu/libc.so.6": "/lib/x86_64-linux-gnu/libc.so.6",
                  "lib/x86_64-linux-gnu/libcap.so.2": "/lib/x86_64-linux-gnu/libcap.so.2",
                  "lib64/ld-linux-x86-64.so.2": "/lib64/ld-linux-x86-64.so.2"}

DOCKERFILE = """\
FROM base
RUN echo 'app:x:1000:1000::/home/app:/bin/sh' >> /etc/passwd && echo 'app:x:1000:' >> /etc/group \\
 && mkdir -p /home/app /data && chown 1000:1000 /home/app && chmod 0750 /home/app \\
 && touch /data/a /data/b /data/c && chown 1234:5678 /data/a && chown 65000:65000 /data/b \\
 && chown 1000:1000 /data/c && chmod 2755 /data/c \\
 && cp /bin/busybox /data/suid && chmod 4755 /data/suid \\
 && setfattr -n user.note -v hello /data/a \\
 && cp /bin/busybox /data/ping && setcap cap_net_raw+ep /data/ping \\
 && rm /etc/motd
COPY --chown=1000:1000 hello.txt /home/app/
COPY --chown=65000:1234 hello.txt /data/
RUN rm -rf /opt/old && mkdir /opt/old && touch /opt/old/new
USER app
"""

#: what the image says, as `stat -c '%n %u:%g %a'` prints it inside a container
OWNERS = ["/home/app 1000:1000 750", "/home/app/hello.txt 1000:1000 644", "/data/a 1234:5678 644",
          "/data/b 65000:65000 644", "/data/c 1000:1000 2755", "/data/suid 0:0 4755",
          "/data/hello.txt 65000:1234 644", "/etc/passwd 0:0 644", "/bin/busybox 0:0 755"]
STAT = "stat -c '%n %u:%g %a' " + " ".join(line.split()[0] for line in OWNERS)


def _rootfs(where: Path) -> Path:
    """A small root filesystem directory (busybox, /etc/motd to be deleted, setfattr and setcap)."""
    files = busybox_files()
    root = write_tree(where / "rootfs", {n: c for n, c in files.items() if not n.startswith("bin/")}, mode=0o644)
    write_tree(root, {n: c for n, c in files.items() if n.startswith("bin/")}, mode=0o755)
    (root / "etc" / "motd").write_text("welcome\n")
    (root / "opt" / "old").mkdir(parents=True)
    (root / "opt" / "old" / "gone").write_text("replaced by a RUN step\n")
    (root / "home").mkdir()
    for name, source in EXTRA_PROGRAMS.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, root / name)
        (root / name).chmod(0o755)
    for dirpath, dirnames, _files in os.walk(root):
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), 0o755)
    return root


def _context(where: Path) -> Path:
    ctx = where / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "hello.txt").write_text("hello\n")
    (ctx / "hello.txt").chmod(0o644)
    return ctx


def _range(user: RootlessUser) -> tuple[int, int]:
    """The user's first subordinate range: the one mapped (useradd may have given one before the harness's)."""
    found = subordinate("/etc/subuid", user.name, user.uid)
    assert found is not None and found[0] >= SUB_START
    return found


def _manifest(run: object, name: str) -> dict:  # type: ignore[type-arg]
    return json.loads(run("inspect", "--raw", name).stdout)  # type: ignore[operator]


@pytest.fixture(scope="module")
def built(rootless_user: RootlessUser, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The same import + build as root (its own store) and as the rootless user (its default store)."""
    user = rootless_user
    user.clear_store()
    here = tmp_path_factory.mktemp("root-build")
    root_store = here / "store"
    env = {"IMAGETOOL_STORE": str(root_store)}

    def as_root(*args: str) -> subprocess.CompletedProcess[str]:
        return imagetool(*args, env=env)

    as_root("import", "--timestamp", "0", str(_rootfs(here)), "base")
    as_root("build", "-q", "--timestamp", "0", "-t", "out", str(_context(here)))

    mine = user.mkdtemp("build-")
    _rootfs(mine)
    ctx = _context(mine)
    user.give(mine)
    user.imagetool("import", "--timestamp", "0", str(mine / "rootfs"), "base")
    proc = user.imagetool("build", "--timestamp", "0", "-t", "out", str(ctx))
    return {"root": as_root, "root_store": root_store, "user": user, "build_log": proc.stdout + proc.stderr}


def test_root_and_rootless_builds_are_byte_identical(built: dict[str, object]) -> None:
    user: RootlessUser = built["user"]  # type: ignore[assignment]
    as_root = built["root"]
    assert _manifest(user.imagetool, "base") == _manifest(as_root, "base")
    ours, theirs = _manifest(user.imagetool, "out"), _manifest(as_root, "out")
    assert [layer["digest"] for layer in ours["layers"]] == [layer["digest"] for layer in theirs["layers"]]
    assert ours["config"]["digest"] == theirs["config"]["digest"]   # the image ID


def _layer_members(store: Path, digest: str) -> dict[str, object]:
    import tarfile

    with tarfile.open(store / "blobs" / "sha256" / digest.split(":")[1]) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_rootless_layers_carry_container_ids(built: dict[str, object]) -> None:
    """What the root build gives, checked on its own: the rootless layers are the same bytes (above)."""
    user: RootlessUser = built["user"]  # type: ignore[assignment]
    layers = [layer["digest"] for layer in _manifest(user.imagetool, "out")["layers"]]
    base = _layer_members(user.store, layers[0])
    assert (base["etc/passwd"].uid, base["etc/passwd"].gid) == (0, 0)   # type: ignore[attr-defined]
    run = _layer_members(user.store, layers[1])
    owners = {name: (m.uid, m.gid, m.mode) for name, m in run.items()}  # type: ignore[attr-defined]
    assert owners["home/app"] == (1000, 1000, 0o750)
    assert owners["data/a"][:2] == (1234, 5678) and owners["data/b"][:2] == (65000, 65000)
    assert owners["data/suid"] == (0, 0, 0o4755) and owners["data/c"] == (1000, 1000, 0o2755)
    assert "etc/.wh.motd" in run
    assert run["data/a"].pax_headers.get("SCHILY.xattr.user.note") == "hello"  # type: ignore[attr-defined]
    cap = run["data/ping"].pax_headers.get("SCHILY.xattr.security.capability")  # type: ignore[attr-defined]
    assert cap is not None
    # a plain (v2) capability, not the namespaced v3 form that names a host uid as its root
    assert cap.encode("latin-1", "surrogateescape")[3] == 0x02
    copied = _layer_members(user.store, layers[2])
    assert (copied["home/app/hello.txt"].uid, copied["home/app/hello.txt"].gid) == (1000, 1000)  # type: ignore
    # a directory replaced by a RUN step: opaque, also when overlay ran rootless (userxattr)
    replaced = _layer_members(user.store, layers[4])
    assert "opt/old/.wh..wh..opq" in replaced and "opt/old/new" in replaced
    for members in (base, run, copied, replaced):
        for m in members.values():
            assert m.uid < SUB_START and m.gid < SUB_START, m  # type: ignore[attr-defined]


def test_rootless_run_sees_the_image_owners(built: dict[str, object]) -> None:
    user: RootlessUser = built["user"]  # type: ignore[assignment]
    proc = user.imagetool("run", "--rm", "--user", "0", "out", "sh", "-c", STAT)
    assert proc.stdout.splitlines() == OWNERS
    # the image's USER app writes its own home
    proc = user.imagetool("run", "--rm", "out", "sh", "-c",
                          "id -u; echo x > /home/app/new && stat -c %u:%g /home/app/new")
    assert proc.stdout.split() == ["1000", "1000:1000"]
    assert user.imagetool("run", "--rm", "out", "ls", "/opt/old").stdout.split() == ["new"]
    as_root = built["root"]
    assert as_root("run", "--rm", "--user", "0", "out", "sh", "-c", STAT).stdout.splitlines() == OWNERS


def test_other_tools_read_the_rootless_image(built: dict[str, object], tmp_path: Path) -> None:
    """skopeo inspects it, umoci unpacks it (as root) with the image's owners, runc runs it."""
    user: RootlessUser = built["user"]  # type: ignore[assignment]
    out = user.mkdtemp("export-")
    user.imagetool("copy", "-q", "out", f"oci:{out}/layout:out")
    info = json.loads(skopeo("inspect", f"oci:{out}/layout:out").stdout)
    assert len(info["Layers"]) == 5
    bundle = umoci_unpack(out / "layout", "out", tmp_path / "bundle")
    rootfs = bundle / "rootfs"
    for line in OWNERS:
        path, owner, mode = line.split()
        st = os.lstat(rootfs / path.lstrip("/"))
        assert (f"{st.st_uid}:{st.st_gid}", f"{stat.S_IMODE(st.st_mode):o}") == (owner, mode), path
    assert not (rootfs / "etc" / "motd").exists()
    assert os.getxattr(rootfs / "data" / "a", "user.note") == b"hello"
    assert "cap_net_raw=ep" in tool(["getcap", str(rootfs / "data" / "ping")]).stdout
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["user"] = {"uid": 0, "gid": 0}
    caps = config["process"].setdefault("capabilities", {})
    for kind in ("bounding", "effective", "permitted"):
        caps[kind] = sorted(set(caps.get(kind) or []) | {"CAP_DAC_OVERRIDE"})  # root reads /home/app (0750)
    (bundle / "config.json").write_text(json.dumps(config))
    assert runc_run(bundle, ["sh", "-c", STAT]).splitlines() == OWNERS


def test_unshare_runs_in_the_store_namespace(rootless_user: RootlessUser, tmp_path: Path) -> None:
    user = rootless_user
    proc = user.imagetool("unshare", "sh", "-c", "id -u; cat /proc/self/uid_map; echo $IMAGETOOL_STORE; exit 7",
                          check=False)
    assert proc.returncode == 7, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "0"
    assert lines[1].split() == ["0", str(user.uid), "1"]
    start, count = _range(user)
    assert lines[2].split() == ["1", str(start), str(count)]
    assert lines[3] == str(user.store)
    # inside, files of subordinate ids have the container's owners and the user may remove them
    probe = user.mkdtemp("unshare-")
    proc = user.imagetool("unshare", "sh", "-c", f"mkdir {probe}/d && touch {probe}/d/f && chown -R 1234:5678 {probe}/d"
                          f" && stat -c %u:%g {probe}/d/f")
    assert proc.stdout.strip() == "1234:5678"
    assert os.stat(probe / "d" / "f").st_uid == start + 1233
    user.imagetool("unshare", "rm", "-rf", f"{probe}/d")
    assert not (probe / "d").exists()
    missing = user.imagetool("unshare", "no-such-command", check=False)
    assert missing.returncode == 127 and "not found" in missing.stderr
    # as root it just runs the command
    assert imagetool("unshare", "sh", "-c", "id -u; exit 3", check=False).returncode == 3


def test_the_remote_cache_stores_container_ids(built: dict[str, object], plain_registry: Registry) -> None:
    """--cache-to pushes the step layers a rootless build made: the same bytes root's build has."""
    user: RootlessUser = built["user"]  # type: ignore[assignment]
    ctx = user.mkdtemp("cached-")
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "hello.txt").write_text("hello\n")
    user.give(ctx)
    cache = f"{plain_registry.host}/rootless-ids/cache"
    out = user.imagetool("--insecure-policy", "build", "--no-cache", "--timestamp", "0", "--tls-verify=false",
                         "--cache-to", cache, str(ctx)).stdout
    assert "--> 4 step layers recorded in the cache" in out, out
    cached = set()
    for tag in json.loads(imagetool("list-tags", "--tls-verify=false", f"docker://{cache}").stdout)["Tags"]:
        raw = imagetool("inspect", "--raw", "--tls-verify=false", f"docker://{cache}:{tag}").stdout
        cached.update(layer["digest"] for layer in json.loads(raw)["layers"])
    root_layers = {layer["digest"] for layer in _manifest(built["root"], "out")["layers"][1:]}
    assert cached == root_layers


def test_commit_of_a_rootless_container_has_container_ids(built: dict[str, object]) -> None:
    user: RootlessUser = built["user"]  # type: ignore[assignment]
    name = f"committed-{os.getpid()}"
    user.imagetool("run", "--name", name, "--user", "0", "out", "sh", "-c",
                   "mkdir /made && touch /made/f && chown -R 4321:8765 /made && rm /data/b")
    user.imagetool("commit", "--rm", "--timestamp", "0", name, "committed")
    top = _manifest(user.imagetool, "committed")["layers"][-1]["digest"]
    members = _layer_members(user.store, top)
    assert (members["made/f"].uid, members["made/f"].gid) == (4321, 8765)  # type: ignore[attr-defined]
    assert "data/.wh.b" in members
    assert all(m.uid < SUB_START and m.gid < SUB_START for m in members.values())  # type: ignore[attr-defined]
    assert not (user.store / "containers" / name).exists()
    proc = user.imagetool("run", "--rm", "committed", "stat", "-c", "%u:%g", "/made/f")
    assert proc.stdout.strip() == "4321:8765"


def test_an_owner_outside_the_subordinate_range_is_an_error(rootless_user: RootlessUser) -> None:
    """As buildah and podman: an image needing more ids than /etc/subuid grants fails to unpack, clearly."""
    import io
    import tarfile

    user = rootless_user
    where = user.mkdtemp("unmapped-")
    with tarfile.open(where / "big.tar", "w", format=tarfile.PAX_FORMAT) as t:
        info = tarfile.TarInfo("far")
        info.uid = info.gid = 70000
        info.size = 3
        t.addfile(info, io.BytesIO(b"far"))
    user.give(where)
    user.imagetool("import", str(where / "big.tar"), "unmapped")
    proc = user.imagetool("run", "--rm", "unmapped", "/far", check=False)
    assert proc.returncode != 0
    assert "owner 70000:70000 is not mapped in the user namespace" in one_line_error(proc)


def test_snapshots_of_another_mapping_are_unpacked_again(built: dict[str, object]) -> None:
    """A store whose snapshots were unpacked flattened (an older version) or under another /etc/subuid."""
    user: RootlessUser = built["user"]  # type: ignore[assignment]
    snapshots = user.store / "snapshots"
    assert (snapshots / "idmap").read_text().startswith(f"uids 0:{user.uid}:1 1:")
    user.imagetool("unshare", "chown", "-R", "0:0", str(snapshots / "sha256"))   # as if unpacked without ids
    (snapshots / "idmap").unlink()
    proc = user.imagetool("run", "--rm", "--user", "0", "out", "sh", "-c", STAT)
    assert proc.stdout.splitlines() == OWNERS
    assert (snapshots / "idmap").is_file()
    assert [p.name for p in snapshots.iterdir() if p.name.startswith(".tmp-stale-")]
    user.imagetool("prune")   # gc takes the stale trees away
    assert not [p.name for p in snapshots.iterdir() if p.name.startswith(".tmp-")]


PROBE_OWNERS = """
stat -c '%n %u:%g' /etc/passwd /bin/busybox
mkdir /tmp/p && touch /tmp/p/f && chown 1234:5678 /tmp/p/f && chown 65000:1 /tmp/p
stat -c '%n %u:%g' /tmp/p /tmp/p/f
chown 4321 /etc/passwd && stat -c '%n %u:%g' /etc/passwd
"""


@pytest.mark.parametrize("way", ways())
def test_every_way_sees_and_sets_the_same_owners(prober: Prober, way: Way) -> None:
    """Image files keep their owners and a chown (to ids below and near the range's end) sticks, every way."""
    result = prober.probe(way, PROBE_OWNERS)
    assert result.code == 0, result.stderr
    assert result.lines == ["/etc/passwd 0:0", "/bin/busybox 0:0", "/tmp/p 65000:1", "/tmp/p/f 1234:5678",
                            "/etc/passwd 4321:0"]


def test_unshare_maps_as_buildah_does(rootless_user: RootlessUser) -> None:
    """The same user gets the same namespace from `imagetool unshare` and `buildah unshare`."""
    user = rootless_user
    script = "cat /proc/self/uid_map /proc/self/gid_map; id -u"
    ours = user.imagetool("unshare", "sh", "-c", script).stdout.split()
    theirs = user.run(["buildah", "--storage-driver", "vfs", "unshare", "sh", "-c", script]).stdout.split()
    assert ours == theirs
    assert ours[3:6] == ["1", str(SUB_START), str(SUB_COUNT)]


def test_rootless_secret_mount_has_the_owner_asked_for(rootless_user: RootlessUser, busybox_layout: Path) -> None:
    user = rootless_user
    user.imagetool("copy", "-q", f"oci:{busybox_layout}:latest", "busybox")
    ctx = user.mkdtemp("secret-")
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN --mount=type=secret,id=s,uid=1000,gid=1234,mode=0440 "
                                    "stat -c %u:%g:%a /run/secrets/s && cat /run/secrets/s\n")
    user.give(ctx)
    out = user.imagetool("build", "--no-cache", "--secret", "id=s,env=SECRET", str(ctx),
                         env={"SECRET": "s3cret"}).stdout
    assert "1000:1234:440\ns3cret" in out, out


def test_unshare_without_subordinate_ranges_maps_the_user_alone(rootless_user_no_ranges: RootlessUser) -> None:
    user = rootless_user_no_ranges
    proc = user.imagetool("unshare", "sh", "-c", "id -u; cat /proc/self/uid_map /proc/self/gid_map")
    lines = proc.stdout.splitlines()
    assert lines[0] == "0"
    assert [line.split() for line in lines[1:]] == [["0", str(user.uid), "1"], ["0", str(user.gid), "1"]]


def _owners_of_layers(layout: Path, name: str) -> list[dict[str, tuple[int, int, int]]]:
    import tarfile

    index = json.loads((layout / "index.json").read_text())
    entry = next(m for m in index["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == name)
    manifest = json.loads((layout / "blobs" / "sha256" / entry["digest"].split(":")[1]).read_text())
    found = []
    for layer in manifest["layers"]:
        with tarfile.open(layout / "blobs" / "sha256" / layer["digest"].split(":")[1]) as tar:
            # Go's tar writes the file type bits into the mode too: compare permissions only
            found.append({m.name.rstrip("/"): (m.uid, m.gid, stat.S_IMODE(m.mode)) for m in tar.getmembers()})
    return found


def test_buildah_as_the_same_user_writes_the_same_owners(built: dict[str, object]) -> None:
    """buildah bud (rootless, chroot isolation) from the same base: every path both layers have, same owner."""
    user: RootlessUser = built["user"]  # type: ignore[assignment]
    where = user.mkdtemp("buildah-")
    user.imagetool("copy", "-q", "base", f"oci:{where}/layout:base")
    user.imagetool("copy", "-q", "out", f"oci:{where}/layout:out")
    ctx = _context(where)
    (ctx / "Dockerfile").write_text(DOCKERFILE.replace("FROM base", f"FROM oci:{where}/layout:base"))
    user.give(where)
    buildah = ["buildah", "--storage-driver", "vfs"]
    user.run([*buildah, "bud", "--layers", "--isolation", "chroot", "--timestamp", "0", "-t", "theirs", str(ctx)])
    user.run([*buildah, "push", "theirs", f"oci:{where}/layout:theirs"])
    ours, theirs = _owners_of_layers(where / "layout", "out"), _owners_of_layers(where / "layout", "theirs")
    assert len(ours) == len(theirs)
    for mine, other in zip(ours[1:], theirs[1:], strict=True):
        common = set(mine) & set(other)
        assert {n: mine[n] for n in common} == {n: other[n] for n in common}
    assert {"data/a", "data/b", "home/app", "data/suid", "etc/.wh.motd"} <= set(ours[1]) & set(theirs[1])


def _owned_by_others(root: Path, user: RootlessUser) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            st = os.lstat(os.path.join(dirpath, name))
            if st.st_uid != user.uid:
                found.append(os.path.join(dirpath, name))
    return found


def test_rootless_cleanup_leaves_nothing(built: dict[str, object]) -> None:
    """Last in the module: it takes the images away."""
    user: RootlessUser = built["user"]  # type: ignore[assignment]
    containers = user.store / "containers"
    # --rm takes away a container whose upperdir has files of subordinate ids
    user.imagetool("run", "--rm", "--user", "0", "out", "sh", "-c", "touch /data/x && chown 4321:4321 /data/x")
    assert not containers.exists() or os.listdir(containers) == []
    for n in range(2):
        user.imagetool("run", "--user", "0", "out", "sh", "-c", f"mkdir /data/d{n} && chown -R 1234:1234 /data")
    assert len(os.listdir(containers)) == 2
    user.imagetool("rm", "--all")
    assert os.listdir(containers) == []

    # a failed build leaves no temp dir behind, even with files of subordinate ids in its upperdir
    tmp = user.mkdtemp("tmpdir-")
    ctx = user.mkdtemp("failing-")
    (ctx / "Dockerfile").write_text("FROM out\nUSER 0\nRUN mkdir /x && touch /x/f && chown -R 1234:5678 /x && false\n")
    user.give(ctx)
    proc = user.imagetool("--tmpdir", str(tmp), "build", str(ctx), check=False)
    assert proc.returncode != 0 and "status 1" in proc.stderr, proc.stderr
    assert os.listdir(tmp) == []

    # rmi and prune take away every snapshot: nothing of a subordinate id stays in the store
    snapshots = user.store / "snapshots"
    assert any(os.lstat(p).st_uid >= SUB_START for p in snapshots.rglob("*"))
    user.imagetool("rmi", "--all", "--force")
    user.imagetool("prune")
    assert _owned_by_others(user.store, user) == []
    assert [p.name for p in snapshots.rglob("*") if not p.is_dir()] == ["idmap"]
