"""An image that loses its last name stays in the store as a dangling <none> image, as in buildah and podman,
until `rmi ID`, `rmi --prune` or `prune` removes it."""

from __future__ import annotations

import json
from pathlib import Path

from tests.lib.cli import imagetool
from tests.lib.images import random_image


def _images() -> dict[str, list[str]]:
    """Image ID (hex) -> names."""
    return {i["id"]: sorted(i["names"] or []) for i in json.loads(imagetool("images", "--json", "--no-trunc").stdout)}


def _dangling() -> set[str]:
    return set(imagetool("images", "-q", "--no-trunc", "--filter", "dangling=true").stdout.split())


def _id(name: str) -> str:
    return next(i for i, names in _images().items() if name in names)


def test_retagging_keeps_the_previous_image_dangling(tmp_path: Path, local_store: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\nARG V\nLABEL v=$V\n")
    built = [imagetool("build", "-q", "-t", "localhost/app", "--build-arg", f"V={v}", str(ctx)).stdout.strip()
             for v in (1, 2)]
    assert built[0] != built[1]
    assert _dangling() == {built[0]}
    assert json.loads(imagetool("inspect", "--config", built[0]).stdout)["config"]["Labels"] == {"v": "1"}
    rows = [line.split() for line in imagetool("images").stdout.splitlines()[1:]]
    assert ["<none>", "<none>", built[0][:12]] in [row[:3] for row in rows]

    # copy over an existing name, tag, pull: each leaves the image it took the name from
    for seed in (1, 2):
        random_image(tmp_path / f"src{seed}", "v1", seed=seed)
    imagetool("copy", "-q", f"oci:{tmp_path}/src1:v1", "localhost/x:1")
    first = _id("localhost/x:1")
    imagetool("copy", "-q", f"oci:{tmp_path}/src2:v1", "localhost/x:1")
    assert _dangling() == {built[0], first}
    second = _id("localhost/x:1")
    imagetool("tag", "localhost/app", "localhost/x:1")
    assert _dangling() == {built[0], first, second}
    random_image(tmp_path / "p", "v1", seed=3)
    pulled = imagetool("pull", "-q", f"oci:{tmp_path}/p:v1").stdout.strip()
    random_image(tmp_path / "p", "v1", seed=4)
    imagetool("pull", "-q", "--policy", "always", f"oci:{tmp_path}/p:v1")
    assert _dangling() == {built[0], first, second, pulled}

    # an image keeping another name, or named again, is not dangling; no duplicate entries
    imagetool("tag", first, "localhost/again:1")
    imagetool("tag", "localhost/app", "localhost/y:1")
    imagetool("copy", "-q", f"oci:{tmp_path}/src1:v1", "localhost/app")
    assert _dangling() == {built[0], second, pulled}
    assert _images()[built[1]] == ["localhost/x:1", "localhost/y:1"]
    assert _images()[first] == ["localhost/again:1", "localhost/app:latest"]
    index = json.loads((local_store / "index.json").read_text())
    assert len([d for d in index["manifests"] if not d.get("annotations")]) == 3

    # rmi ID, then prune, remove dangling images and their blobs
    blobs = local_store / "blobs" / "sha256"
    imagetool("rmi", second)
    assert _dangling() == {built[0], pulled} and second not in _images()
    dry = imagetool("prune", "--dry-run").stdout.split()
    assert {w for w in dry if ":" not in w} == {built[0], pulled} and any(w.startswith("sha256:") for w in dry)
    assert _dangling() == {built[0], pulled}
    imagetool("prune")
    assert _dangling() == set()
    assert sorted(_images()) == sorted({built[1], first, _id("localhost/p:v1")})
    before = sorted(p.name for p in blobs.iterdir())
    imagetool("rmi", "localhost/x:1")
    imagetool("copy", "-q", f"oci:{tmp_path}/src2:v1", "localhost/y:1")
    assert _dangling() == {built[1]}
    assert imagetool("rmi", "--prune").stdout.split() == [built[1]]
    assert _dangling() == set()
    assert not set(before) <= {p.name for p in blobs.iterdir()}
