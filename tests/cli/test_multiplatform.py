"""Multi-platform builds: foreign RUN steps under qemu (binfmt_misc, F flag), one index per build,
BuildKit's platform ARGs, and the list pushed to a registry and read back by skopeo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagetool import media
from imagetool.descriptor import Descriptor, Platform
from imagetool.manifest import Index
from imagetool.runtime import binfmt
from imagetool.store import refs
from imagetool.store.layout import LayoutStore
from tests.lib.cli import imagetool, one_line_error, skopeo
from tests.lib.foreign import HOST_ARCH, busybox_platform_index
from tests.lib.images import make_layer, write_image
from tests.lib.registry import Registry
from tests.lib.rootless import RootlessUser

HOST_MACHINE = {"amd64": "x86_64", "arm64": "aarch64"}[HOST_ARCH]


@pytest.fixture
def base(tmp_path: Path, arm64_busybox: bytes) -> Path:
    """An OCI layout whose `latest` is a busybox index: this machine's image and a real arm64 one."""
    where = tmp_path / "base"
    busybox_platform_index(where, arm64_busybox)
    return where


def _context(tmp_path: Path, dockerfile: str, name: str = "ctx") -> Path:
    ctx = tmp_path / name
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile)
    return ctx


def _config(name: str) -> dict:  # type: ignore[type-arg]
    return json.loads(imagetool("inspect", "--config", name).stdout)  # type: ignore[no-any-return]


def _instances(name: str) -> dict[str, str]:
    """platform -> instance digest of the list `name`."""
    listed = json.loads(imagetool("manifest", "inspect", name).stdout)
    return {"/".join(p for p in (m["platform"]["os"], m["platform"]["architecture"], m["platform"].get("variant"))
                     if p): m["digest"] for m in listed["manifests"]}


@pytest.mark.parametrize("runtime", ["embedded", "runc"])
def test_run_steps_of_each_platform(tmp_path: Path, base: Path, qemu_arm64: binfmt.Entry, runtime: str) -> None:
    ctx = _context(tmp_path, f"FROM oci:{base}:latest\nRUN uname -m > /arch\nRUN cat /arch\n")
    out = imagetool("build", "--runtime", runtime, "--platform", f"linux/{HOST_ARCH},linux/arm64/v8",
                    "--manifest", "multi", str(ctx)).stdout
    assert "aarch64" in out and HOST_MACHINE in out
    found = _instances("multi")
    assert sorted(found) == sorted([f"linux/{HOST_ARCH}", "linux/arm64/v8"])
    for plat, machine in ((f"linux/{HOST_ARCH}", HOST_MACHINE), ("linux/arm64/v8", "aarch64")):
        image = f"localhost/multi@{found[plat]}"
        cfg = _config(image)
        assert [cfg["os"], cfg["architecture"], cfg.get("variant")] == \
            (["linux", "arm64", "v8"] if plat.endswith("v8") else ["linux", HOST_ARCH, None])
        # the image's file says what the RUN step's kernel (or emulator) reported
        got = imagetool("run", "--rm", "--runtime", runtime, "--platform", plat, "multi", "cat", "/arch").stdout
        assert got == f"{machine}\n"
    # --all-platforms: what the base offers (its arm64/v8 entry), the same images from the cache
    imagetool("build", "--runtime", runtime, "--all-platforms", "--manifest", "all", str(ctx))
    assert _instances("all") == found
    # `run --platform` picks the instance, and runs the arm64 busybox under the emulator
    assert imagetool("run", "--rm", "--runtime", runtime, "--platform", "linux/arm64", "multi",
                     "uname", "-m").stdout == "aarch64\n"
    assert imagetool("run", "--rm", "--runtime", runtime, "multi", "uname", "-m").stdout == f"{HOST_MACHINE}\n"


def test_no_emulator_fails_before_any_step(tmp_path: Path, base: Path, unregistered_platform: str) -> None:
    arch = unregistered_platform.split("/")[1]
    ctx = _context(tmp_path, f"FROM oci:{base}:latest\nCOPY Dockerfile /\nRUN echo ran > /ran\n")
    bad = imagetool("build", "--platform", unregistered_platform, "-t", "nope", str(ctx), check=False)
    line = one_line_error(bad)
    qemu = f"qemu-{binfmt.ELF[arch].qemu}"
    assert qemu in line and "qemu-user-static" in line and unregistered_platform in line
    assert "STEP" not in bad.stdout and "COPY" not in bad.stdout  # refused before the first step
    assert "nope" not in imagetool("images").stdout
    # the same for one platform among several: nothing is built, nothing tagged
    both = imagetool("build", "--platform", f"linux/{HOST_ARCH},{unregistered_platform}", "--manifest", "nolist",
                     "-t", "nope2", str(ctx), check=False)
    assert qemu in one_line_error(both)
    assert "STEP" not in both.stdout  # not even this machine's platform was built
    assert imagetool("images", "-q", "--all").stdout.strip() == ""  # nothing pulled, built or tagged


@pytest.mark.parametrize("runtime", ["embedded", "runc"])
def test_rootless_emulated_build_and_run(rootless_user: RootlessUser, arm64_busybox: bytes,
                                         qemu_arm64: binfmt.Entry, runtime: str) -> None:
    where = rootless_user.mkdtemp()
    busybox_platform_index(where / "base", arm64_busybox)
    (where / "ctx").mkdir()
    (where / "ctx" / "Dockerfile").write_text(f"FROM oci:{where}/base:latest\nRUN uname -m > /arch && id -u >> /arch\n")
    rootless_user.give(where)
    rootless_user.imagetool("build", "--runtime", runtime, "--platform", f"linux/{HOST_ARCH},linux/arm64",
                            "--manifest", "rl", str(where / "ctx"))
    for plat, machine in ((f"linux/{HOST_ARCH}", HOST_MACHINE), ("linux/arm64", "aarch64")):
        got = rootless_user.imagetool("run", "--rm", "--runtime", runtime, "--platform", plat, "rl", "cat", "/arch")
        assert got.stdout == f"{machine}\n0\n"


PROBE = ("grep Seccomp: /proc/self/status; uname -m; "
         "unshare -U true 2>/dev/null && echo unshare: allowed || echo unshare: denied; "
         "unshare -m true 2>/dev/null && echo mount-ns: allowed || echo mount-ns: denied")


@pytest.mark.parametrize("runtime", ["embedded", "runc"])
def test_confined_under_emulation(tmp_path: Path, base: Path, qemu_arm64: binfmt.Entry, runtime: str) -> None:
    """The emulator runs inside the container's confinement: seccomp filters the syscalls qemu makes for
    the arm64 program, so what the default profile denies natively it denies emulated too."""
    imagetool("copy", "-q", "--all", f"oci:{base}:latest", "localhost/bb")
    answers = {}
    for plat in (f"linux/{HOST_ARCH}", "linux/arm64"):
        ran = imagetool("run", "--rm", "--runtime", runtime, "--platform", plat, "bb", "sh", "-c", PROBE).stdout
        answers[plat] = ran.splitlines()
    native, emulated = answers[f"linux/{HOST_ARCH}"], answers["linux/arm64"]
    assert emulated[1] == "aarch64" and native[1] == HOST_MACHINE
    assert emulated[0].split() == ["Seccomp:", "2"] == native[0].split()
    assert emulated[2:] == native[2:] == ["unshare: denied", "mount-ns: denied"]
    # a build's RUN steps are confined the same way
    ctx = _context(tmp_path, f"FROM oci:{base}:latest\nRUN {{ {PROBE}; }} > /probe\n")
    imagetool("build", "--runtime", runtime, "--platform", "linux/arm64", "-t", "probed", str(ctx))
    got = imagetool("run", "--rm", "--platform", "linux/arm64", "probed", "cat", "/probe").stdout.splitlines()
    assert got[1] == "aarch64" and got[0].split() == ["Seccomp:", "2"] and got[2:] == emulated[2:]


def test_build_platform_stage_runs_natively(tmp_path: Path, base: Path, qemu_arm64: binfmt.Entry) -> None:
    """BuildKit's cross-compilation pattern: the build stage is pinned to $BUILDPLATFORM (it runs natively
    and "compiles" for $TARGETARCH), the final stage is the target platform's."""
    ctx = _context(tmp_path, f"""ARG BASE=oci:{base}:latest
FROM --platform=$BUILDPLATFORM $BASE AS build
ARG TARGETARCH
ARG TARGETPLATFORM
ARG BUILDPLATFORM
ARG BUILDARCH
RUN echo "stage=$(uname -m) for=$TARGETARCH target=$TARGETPLATFORM build=$BUILDPLATFORM/$BUILDARCH" > /out
FROM $BASE
ARG TARGETARCH
ARG TARGETVARIANT
ARG BUILDOS
COPY --from=build /out /out
RUN echo "final=$(uname -m) arch=$TARGETARCH variant=$TARGETVARIANT buildos=$BUILDOS" >> /out
RUN echo "undeclared=$TARGETOS$BUILDARCH" >> /out
""")
    imagetool("build", "--platform", f"linux/{HOST_ARCH},linux/arm64/v8", "--manifest", "cross", str(ctx))
    found = _instances("cross")
    host = f"linux/{HOST_ARCH}"
    for plat, arch, variant, machine in ((host, HOST_ARCH, "", HOST_MACHINE), ("linux/arm64/v8", "arm64", "v8",
                                                                                 "aarch64")):
        out = imagetool("run", "--rm", "--platform", plat, "cross", "cat", "/out").stdout
        assert out == (f"stage={HOST_MACHINE} for={arch} target={plat} build={host}/{HOST_ARCH}\n"
                       f"final={machine} arch={arch} variant={variant} buildos=linux\n"
                       "undeclared=\n")  # inside a stage only what ARG NAME declares
        assert _config(f"localhost/cross@{found[plat]}")["architecture"] == arch


def test_platforms_build_concurrently(tmp_path: Path, base: Path, qemu_arm64: binfmt.Entry) -> None:
    """--jobs 2: both platforms' RUN steps run at once (one sees the other's mark in a shared volume);
    --jobs 1: one after the other. Lines carry their platform while several run."""
    shared = tmp_path / "shared"
    ctx = _context(tmp_path, f"FROM oci:{base}:latest\nARG TARGETARCH\nRUN touch /shared/$TARGETARCH && "
                             "sleep 3 && ls /shared > /seen && rm /shared/$TARGETARCH\n")
    results = {}
    for jobs in ("2", "1"):
        shared.mkdir()
        out = imagetool("build", "--jobs", jobs, "--no-cache", "-v", f"{shared}:/shared",
                        "--platform", f"linux/{HOST_ARCH},linux/arm64", "--manifest", f"j{jobs}", str(ctx)).stdout
        results[jobs] = {p: imagetool("run", "--rm", "--platform", p, f"j{jobs}", "cat", "/seen").stdout.split()
                         for p in (f"linux/{HOST_ARCH}", "linux/arm64")}
        prefixed = any(line.startswith("[linux/arm64] STEP") for line in out.splitlines())
        assert prefixed == (jobs == "2"), out
        shared.rmdir()
    # the step that ends first saw the other's mark: their runs overlapped
    assert any(sorted(seen) == sorted([HOST_ARCH, "arm64"]) for seen in results["2"].values()), results
    assert results["1"] == {f"linux/{HOST_ARCH}": [HOST_ARCH], "linux/arm64": ["arm64"]}


def test_list_pushed_and_read_back(tmp_path: Path, base: Path, qemu_arm64: binfmt.Entry,
                                   plain_registry: Registry) -> None:
    ctx = _context(tmp_path, f"FROM oci:{base}:latest\nRUN uname -m > /arch\n")
    imagetool("build", "--platform", f"linux/{HOST_ARCH},linux/arm64/v8", "--manifest", "pushed", str(ctx))
    dest = f"docker://{plain_registry.host}/multi/pushed:1"
    imagetool("manifest", "push", "--all", "-q", "--tls-verify=false", "pushed", dest)
    raw = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", dest).stdout)
    assert sorted((m["platform"]["architecture"], m["platform"].get("variant")) for m in raw["manifests"]) == \
        sorted([(HOST_ARCH, None), ("arm64", "v8")])
    skopeo("copy", "--all", "--src-tls-verify=false", dest, f"oci:{tmp_path}/back:1")
    arm = json.loads(skopeo("inspect", "--config", "--override-arch", "arm64", "--tls-verify=false", dest).stdout)
    assert (arm["architecture"], arm.get("variant")) == ("arm64", "v8")
    # what skopeo read back runs, each platform's instance
    for plat, machine in ((f"linux/{HOST_ARCH}", HOST_MACHINE), ("linux/arm64", "aarch64")):
        assert imagetool("run", "--rm", "--platform", plat, f"oci:{tmp_path}/back:1", "cat", "/arch").stdout == \
            f"{machine}\n"
    # `push --all` of the list does the same
    imagetool("push", "--all", "-q", "--tls-verify=false", "pushed", f"docker://{plain_registry.host}/multi/p2:1")
    again = json.loads(skopeo("inspect", "--raw", "--tls-verify=false",
                              f"docker://{plain_registry.host}/multi/p2:1").stdout)
    assert [m["digest"] for m in again["manifests"]] == [m["digest"] for m in raw["manifests"]]


def test_arm_variants_fall_back_as_containerd(tmp_path: Path, local_store: Path) -> None:
    """linux/arm/v7 builds on an index's arm/v6 entry when it has no v7 (then v5), never on v8 or arm64;
    the result is labelled with the platform asked for. COPY only: no arm emulator needed."""
    layout = tmp_path / "arm"
    entries = []
    for n, variant in enumerate(("v5", "v6", "v8")):
        desc = write_image(layout, None, [make_layer({"variant": variant}, "gzip", True)],
                           config={"Labels": {"base": variant}}, architecture="arm", create=n == 0)
        entries.append(desc.with_(platform=Platform("arm", "linux", variant), annotations={}))
    arm64 = write_image(layout, None, [make_layer({"variant": "arm64"}, "gzip", True)],
                        config={"Labels": {"base": "arm64"}}, architecture="arm64", create=False)
    entries.append(arm64.with_(platform=Platform("arm64", "linux"), annotations={}))
    index = Index.build(media.OCI_INDEX, entries)
    store = LayoutStore.open(layout)
    store.put_bytes(index.raw)
    store.update_index(lambda _: [refs.named(Descriptor(media.OCI_INDEX, index.digest, len(index.raw)), "latest")])
    ctx = _context(tmp_path, f"FROM oci:{layout}:latest\nCOPY Dockerfile /\n")
    for asked, base in (("linux/arm/v7", "v6"), ("linux/arm/v6", "v6"), ("linux/arm/v5", "v5"),
                        ("linux/arm64/v8", "arm64"), ("linux/arm64", "arm64")):
        imagetool("build", "--platform", asked, "-t", "arm-test", str(ctx))
        cfg = _config("arm-test")
        assert cfg["config"]["Labels"] == {"base": base}, asked
        assert "/".join([cfg["os"], cfg["architecture"], *([cfg["variant"]] if cfg.get("variant") else [])]) \
            == asked
    bad = imagetool("build", "--platform", "linux/arm/v4", str(ctx), check=False)
    assert 'architecture "arm", variant "v4"' in one_line_error(bad)  # v4 is older than any entry
