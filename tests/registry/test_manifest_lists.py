"""`imagetool manifest ...` and `build --manifest`: lists kept in the local store, pushed to a real registry,
read back by skopeo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.lib.cli import imagetool, one_line_error, skopeo
from tests.lib.images import random_image, two_platform_index
from tests.lib.registry import Registry

pytestmark = pytest.mark.usefixtures("registry_env")


def _entries(name: str) -> list[dict]:  # type: ignore[type-arg]
    return json.loads(imagetool("manifest", "inspect", name).stdout)["manifests"]


def test_build_into_a_list_annotate_push(plain_registry: Registry, local_store: Path, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\nARG TARGETARCH\nLABEL arch=$TARGETARCH\n")
    for platform in (["--arch", "amd64"], ["--arch", "arm64", "--variant", "v8"]):
        imagetool("build", "-q", *platform, "--manifest", "localhost/multi", str(ctx))
    entries = _entries("localhost/multi")
    assert [(e["platform"]["os"], e["platform"]["architecture"], e["platform"].get("variant")) for e in entries] == \
        [("linux", "amd64", None), ("linux", "arm64", "v8")]
    arm = entries[1]["digest"]
    imagetool("manifest", "annotate", "--annotation", "org.example.note=arm", "--os-version", "12",
              "localhost/multi", arm)
    assert _entries("localhost/multi")[1]["annotations"] == {"org.example.note": "arm"}
    assert _entries("localhost/multi")[1]["platform"]["os.version"] == "12"

    dest = f"{plain_registry.host}/lists/multi:1"
    imagetool("manifest", "push", "-q", "--tls-verify=false", "--digestfile", str(tmp_path / "d"),
              "localhost/multi", dest)
    raw = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{dest}").stdout)
    assert raw["mediaType"] == "application/vnd.oci.image.index.v1+json" and len(raw["manifests"]) == 2
    skopeo("copy", "--all", "--src-tls-verify=false", f"docker://{dest}", f"oci:{tmp_path}/back:1")
    arm_config = json.loads(skopeo("inspect", "--config", "--override-arch", "arm64", "--override-variant", "v8",
                                   "--tls-verify=false", f"docker://{dest}").stdout)
    assert arm_config["config"]["Labels"] == {"arch": "arm64"}

    imagetool("manifest", "remove", "localhost/multi", arm)
    assert len(_entries("localhost/multi")) == 1
    imagetool("manifest", "rm", "localhost/multi")
    assert imagetool("manifest", "exists", "localhost/multi", check=False).returncode == 1


def test_add_from_registries_and_layouts(plain_registry: Registry, local_store: Path, tmp_path: Path) -> None:
    desc = random_image(tmp_path / "one", "v1", n_layers=1, seed=91)
    remote = f"docker://{plain_registry.host}/lists/one:v1"
    imagetool("copy", "-q", "--dest-tls-verify=false", f"oci:{tmp_path}/one:v1", remote)
    imagetool("manifest", "create", "localhost/mixed")
    added = imagetool("manifest", "add", "--tls-verify=false", "localhost/mixed", remote).stdout.split()
    assert added == [str(desc.digest)]
    index = two_platform_index(tmp_path / "two", "m")
    added = imagetool("manifest", "add", "--all", "localhost/mixed", f"oci:{tmp_path}/two:m").stdout.split()
    assert added == [str(m.digest) for m in index.manifests]
    entries = _entries("localhost/mixed")
    assert [e["digest"] for e in entries] == [str(desc.digest), *added]
    # the instances live in the store: the list pushes with no other source around
    imagetool("manifest", "push", "-q", "--tls-verify=false", "localhost/mixed",
              f"docker://{plain_registry.host}/lists/mixed:1")
    raw = json.loads(skopeo("inspect", "--raw", "--tls-verify=false",
                            f"docker://{plain_registry.host}/lists/mixed:1").stdout)
    assert [m["digest"] for m in raw["manifests"]] == [e["digest"] for e in entries]

    missing = imagetool("manifest", "add", "localhost/nolist", f"oci:{tmp_path}/one:v1", check=False)
    assert missing.returncode != 0 and "no manifest list named localhost/nolist:latest" in one_line_error(missing)
    taken = imagetool("manifest", "create", "localhost/mixed", check=False)
    assert taken.returncode != 0 and "already exists" in one_line_error(taken)
    imagetool("copy", "-q", f"oci:{tmp_path}/one:v1", "localhost/single:1")
    single = imagetool("manifest", "inspect", "localhost/single:1", check=False)
    assert single.returncode != 0 and "not a manifest list" in one_line_error(single)


def test_copy_all_copies_the_platforms_at_once(plain_registry: Registry, tmp_path: Path) -> None:
    """Every instance of an index is copied, concurrently, and the index keeps its digest."""
    from imagetool import media
    from imagetool.descriptor import Descriptor, Platform
    from imagetool.manifest import Index
    from imagetool.store import refs
    from imagetool.store.layout import LayoutStore

    src = tmp_path / "src"
    arches = ["amd64", "arm64", "ppc64le", "s390x"]
    images = [random_image(src, None, n_layers=2, size=200_000, seed=400 + i) for i in range(len(arches))]
    store = LayoutStore.open(src)
    index = Index.build(media.OCI_INDEX, [d.with_(platform=Platform(a, "linux"), annotations={})
                                          for d, a in zip(images, arches, strict=True)])
    store.put_bytes(index.raw)
    store.update_index(lambda _: [refs.named(Descriptor(media.OCI_INDEX, index.digest, len(index.raw)), "all")])
    imagetool("copy", "-q", "--all", "--dest-tls-verify=false", f"oci:{src}:all", plain_registry.ref("plat/img:all"))
    r = plain_registry.raw_get("/v2/plat/img/manifests/all", headers={"Accept": media.OCI_INDEX})
    assert r.headers["Docker-Content-Digest"] == str(index.digest)
    for desc in images:
        assert plain_registry.raw_get(f"/v2/plat/img/manifests/{desc.digest}",
                                      headers={"Accept": media.OCI_MANIFEST}).status_code == 200
    # one after another, each instance's manifest would be written before the next instance's blobs
    log = plain_registry.log()
    first_manifest = min(log.find(f"PUT /v2/plat/img/manifests/{d.digest}") for d in images)
    last_layers = json.loads(store.read_blob(images[-1].digest))["layers"]
    # (by hex: a small blob is checked for with POST ?mount=sha256%3A..., its digest URL-encoded)
    assert any(0 <= log.find(layer["digest"].split(":")[1]) < first_manifest for layer in last_layers), \
        "the platforms were copied one after another"


def test_copy_all_uploads_a_layer_the_platforms_share_once(plain_registry: Registry, tmp_path: Path) -> None:
    """Platforms copied at once that share a layer: one upload of it, the others wait and find it there."""
    from imagetool import media
    from imagetool.descriptor import Descriptor, Platform
    from imagetool.manifest import Index
    from imagetool.store import refs
    from imagetool.store.layout import LayoutStore
    from tests.lib.images import random_layer, write_image

    src = tmp_path / "src"
    shared = random_layer(3_000_000, 77)
    arches = ["amd64", "arm64", "ppc64le", "s390x"]
    images = [write_image(src, None, [shared, random_layer(100_000, 500 + i)], architecture=a, create=i == 0)
              for i, a in enumerate(arches)]
    store = LayoutStore.open(src)
    index = Index.build(media.OCI_INDEX, [d.with_(platform=Platform(a, "linux"), annotations={})
                                          for d, a in zip(images, arches, strict=True)])
    store.put_bytes(index.raw)
    store.update_index(lambda _: [refs.named(Descriptor(media.OCI_INDEX, index.digest, len(index.raw)), "all")])
    imagetool("copy", "-q", "--all", "--dest-tls-verify=false", f"oci:{src}:all", plain_registry.ref("share/img:all"))
    r = plain_registry.raw_get("/v2/share/img/manifests/all", headers={"Accept": media.OCI_INDEX})
    assert r.headers["Docker-Content-Digest"] == str(index.digest)
    assert plain_registry.raw_get(f"/v2/share/img/blobs/{shared.digest}").content == shared.blob
    completed = [line for line in plain_registry.log().splitlines()
                 if '"PUT /v2/share/img/blobs/uploads/' in line and f"digest=sha256%3A{shared.digest.hex}" in line]
    assert len(completed) == 1, completed
