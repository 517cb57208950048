"""inspect and manifest-digest against skopeo on the same images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.lib.cli import imagetool, one_line_error, skopeo
from tests.lib.images import busybox_image, random_image


@pytest.fixture()
def images(tmp_path: Path) -> Path:
    random_image(tmp_path / "lay", "rand", n_layers=3)
    random_image(tmp_path / "lay", "docker", seed=5, oci=False)
    busybox_image(tmp_path / "lay", "busybox")
    return tmp_path / "lay"


@pytest.mark.parametrize("name", ["rand", "busybox"])
def test_inspect_fields_match_skopeo(images: Path, name: str) -> None:
    ours = json.loads(imagetool("inspect", f"oci:{images}:{name}").stdout)
    theirs = json.loads(skopeo("inspect", f"oci:{images}:{name}").stdout)
    for key, value in theirs.items():
        assert ours[key] == value, key
    assert [d["Digest"] for d in ours["LayersData"]] == ours["Layers"]


@pytest.mark.parametrize("name", ["rand", "busybox"])
def test_raw_and_config_are_byte_identical_to_skopeo(images: Path, name: str) -> None:
    ref = f"oci:{images}:{name}"
    assert imagetool("inspect", "--raw", ref).stdout == skopeo("inspect", "--raw", ref).stdout
    assert imagetool("inspect", "--config", "--raw", ref).stdout == skopeo("inspect", "--config", "--raw", ref).stdout
    assert imagetool("inspect", "--config", ref).stdout == skopeo("inspect", "--config", ref).stdout


def test_format_templates_match_skopeo(images: Path) -> None:
    template = "{{.Digest}} {{.Labels}} {{.Layers}} {{.RepoTags}} {{.Created}} {{index .Labels \"test\"}} " \
               "{{range .Layers}}<{{.}}>{{end}} {{len .Layers}} {{.Os}}/{{.Architecture}}"
    ref = f"oci:{images}:rand"
    assert imagetool("inspect", "--format", template, ref).stdout == skopeo("inspect", "--format", template,
                                                                            ref).stdout
    env = json.loads(imagetool("inspect", "--format", "{{json .Env}}", ref).stdout)
    assert env == json.loads(skopeo("inspect", ref).stdout)["Env"]


SKOPEO_TEMPLATES = [
    "{{range $k, $v := .Labels}}{{$k}}={{$v}};{{end}}",
    "{{range $i, $l := .Layers}}{{$i}}:{{$l}} {{end}}",
    "{{with .Labels}}{{.test}}{{end}}|{{.Labels.test}}|{{index .Labels \"nokey\"}}|{{.Name}}|",
    "{{printf \"%s/%s\" .Os .Architecture}} {{.Architecture | printf \"%q\"}}",
    "{{printf \"%-8s|%5d|\" .Os (len .Layers)}}",
    "{{if eq .Os \"windows\"}}W{{else if eq .Os \"linux\"}}L{{else}}?{{end}}",
    "{{range .RepoTags}}[{{.}}]{{else}}none{{end}} {{if and .Labels (not .RepoTags)}}x{{end}}",
    "{{$d := .Digest}}{{range .Layers}}{{$d}} {{end}}",
]


@pytest.mark.parametrize("template", SKOPEO_TEMPLATES)
def test_templates_as_skopeo_users_write_them(images: Path, template: str) -> None:
    ref = f"oci:{images}:rand"
    ours = imagetool("inspect", "--format", template, ref).stdout
    assert ours == skopeo("inspect", "--format", template, ref).stdout
    assert "<no value>" not in ours


def test_bad_templates_are_one_line(images: Path) -> None:
    ref = f"oci:{images}:rand"
    for template, expect in [("{{range .Env}}{{.}}", "missing {{end}}"), ("{{end}}", "unexpected {{end}}"),
                             ("{{upper .Os}}", "unsupported template function"), ("{{$nope}}", "undefined")]:
        assert expect in one_line_error(imagetool("inspect", "--format", template, ref, check=False))


def test_manifest_digest_matches_skopeo(images: Path) -> None:
    manifests = [p for p in (images / "blobs" / "sha256").iterdir() if p.stat().st_size < 2000
                 and b'"schemaVersion"' in p.read_bytes()]
    assert len(manifests) >= 3
    for path in manifests:
        assert imagetool("manifest-digest", str(path)).stdout == skopeo("manifest-digest", str(path)).stdout


def test_inspect_errors_are_one_line(images: Path, tmp_path: Path) -> None:
    assert "no image named" in one_line_error(imagetool("inspect", f"oci:{images}:missing", check=False))
    assert "no such OCI layout" in one_line_error(imagetool("inspect", f"oci:{tmp_path}/nowhere", check=False))
    assert "holds 3 images" in one_line_error(imagetool("inspect", f"oci:{images}", check=False))
    schema1 = tmp_path / "s1.json"
    schema1.write_text(json.dumps({"schemaVersion": 1, "name": "a", "tag": "b", "fsLayers": []}))
    assert "schema 1" in one_line_error(imagetool("manifest-digest", str(schema1), check=False))
    assert "unknown transport" in one_line_error(imagetool("inspect", "nope:/x", check=False))


def test_an_image_without_labels_or_created_prints_like_skopeo(tmp_path: Path) -> None:
    """Go prints a nil map as map[] and a nil time as <nil>; the JSON says null."""
    from imagetool import media
    from imagetool.descriptor import Descriptor
    from imagetool.digest import Digest
    from imagetool.store import refs
    from imagetool.store.layout import LayoutStore
    from tests.lib.images import make_layer

    store = LayoutStore.create(tmp_path / "bare")
    layer = make_layer({"a.txt": b"a"})
    store.put_bytes(layer.blob)
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [str(layer.diff_id)]}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": media.OCI_MANIFEST,
                           "config": {"mediaType": media.OCI_CONFIG, "digest": str(store.put_bytes(config)),
                                      "size": len(config)},
                           "layers": [{"mediaType": layer.media_type, "digest": str(layer.digest),
                                       "size": len(layer.blob)}]}).encode()
    digest = store.put_bytes(manifest)
    store.update_index(lambda _: [refs.named(Descriptor(media.OCI_MANIFEST, digest, len(manifest)), "v1")])
    ref = f"oci:{tmp_path}/bare:v1"
    ours, theirs = json.loads(imagetool("inspect", ref).stdout), json.loads(skopeo("inspect", ref).stdout)
    assert {k: ours[k] for k in theirs} == theirs and theirs["Created"] is None and theirs["Labels"] is None
    template = "{{.Labels}}|{{.Env}}|{{.Created}}|{{len .Labels}}|{{range .Labels}}x{{end}}|{{index .Labels \"a\"}}|" \
               "{{if .Labels}}L{{else}}none{{end}}|{{.Name}}|{{.RepoTags}}"
    assert imagetool("inspect", "-f", template, ref).stdout == skopeo("inspect", "-f", template, ref).stdout == \
        "map[]|[]|<nil>|0|||none||[]\n"
    assert imagetool("inspect", "-f", "{{json .Labels}} {{json .Env}}", ref).stdout == "null null\n"
    assert str(Digest.of(manifest)) == imagetool("inspect", "-f", "{{.Digest}}", ref).stdout.strip()


def _config_image(tmp_path: Path, config: dict[str, object]) -> str:
    """An OCI layout holding one image with exactly `config` (plus its rootfs) as its configuration."""
    from imagetool import media
    from imagetool.descriptor import Descriptor
    from imagetool.manifest import Manifest
    from imagetool.store import refs
    from imagetool.store.layout import LayoutStore
    from tests.lib.images import make_layer

    store = LayoutStore.create(tmp_path / "cfg")
    layer = make_layer({"a.txt": b"a"})
    store.put_bytes(layer.blob)
    raw = json.dumps({**config, "rootfs": {"type": "layers", "diff_ids": [str(layer.diff_id)]}}).encode()
    manifest = Manifest.build(media.OCI_MANIFEST, Descriptor(media.OCI_CONFIG, store.put_bytes(raw), len(raw)),
                              [Descriptor(media.OCI_LAYER_GZIP, layer.digest, len(layer.blob))])
    refs.set_name(store, "v1", Descriptor(media.OCI_MANIFEST, store.put_bytes(manifest.raw), len(manifest.raw)))
    return f"oci:{tmp_path}/cfg:v1"


FULL_CONFIG = {
    "created": "2023-03-21T13:25:08.739140Z", "author": "someone", "architecture": "arm64", "variant": "v8",
    "os": "linux",
    "config": {"User": "1000:1000", "ExposedPorts": {"80/tcp": {}, "443/tcp": {}}, "Env": ["A=1", "B=2"],
               "Entrypoint": ["/bin/sh", "-c"], "Cmd": ["echo hi"], "Volumes": {"/data": {}}, "WorkingDir": "/w",
               "Labels": {"zeta": "last", "alpha": "first", "mid": "<&>"}, "StopSignal": "SIGTERM"},
    "history": [{"created": "2023-03-21T13:25:08.500000000Z", "created_by": "ADD a", "comment": "c"},
                {"created": "2023-03-21T15:25:08+02:00", "created_by": "ENV", "empty_layer": True}],
}

CONFIG_TEMPLATES = [
    "{{.Architecture}}|{{.OS}}|{{.Variant}}|{{.Author}}|{{.Created}}|{{.OSVersion}}|{{.OSFeatures}}",
    "{{.Config.Cmd}}|{{.Config.Entrypoint}}|{{.Config.Env}}|{{.Config.User}}|{{.Config.WorkingDir}}",
    "{{.Config.Labels}}|{{.Config.ExposedPorts}}|{{.Config.Volumes}}|{{.Config.StopSignal}}|{{.Config.ArgsEscaped}}",
    "{{.RootFS.Type}} {{.RootFS.DiffIDs}} {{range .RootFS.DiffIDs}}<{{.}}>{{end}}",
    "{{range .History}}{{.Created}}|{{.CreatedBy}}|{{.Comment}}|{{.EmptyLayer}};{{end}}",
    "{{.History}}",
    "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}},{{end}} {{index .Config.Labels \"mid\"}}",
]


@pytest.mark.parametrize("template", CONFIG_TEMPLATES)
def test_config_templates_see_go_field_names(tmp_path: Path, template: str) -> None:
    """skopeo runs `inspect --config --format` over image-spec's v1.Image struct: Go field names, Go printing."""
    ref = _config_image(tmp_path, FULL_CONFIG)
    ours = imagetool("inspect", "--config", "--format", template, ref).stdout
    assert ours == skopeo("inspect", "--config", "--format", template, ref).stdout
    assert "<no value>" not in ours


def test_config_templates_of_a_sparse_config(tmp_path: Path) -> None:
    """Absent fields print as Go's zero values and typed nils ([] / map[] / <nil>), as skopeo prints them."""
    ref = _config_image(tmp_path, {"architecture": "amd64", "os": "linux"})
    template = "|".join(CONFIG_TEMPLATES)
    ours = imagetool("inspect", "--config", "--format", template, ref).stdout
    assert ours == skopeo("inspect", "--config", "--format", template, ref).stdout


def test_json_in_templates_is_go_marshalling(tmp_path: Path) -> None:
    """`json` writes struct fields in Go's order under their JSON names (omitempty applied), map keys sorted,
    <>& escaped, times as RFC 3339 without trailing zeros: byte for byte what skopeo's --config prints."""
    ref = _config_image(tmp_path, FULL_CONFIG)
    ours = imagetool("inspect", "--config", "--format", "{{json .}}", ref).stdout
    theirs = json.loads(skopeo("inspect", "--config", ref).stdout)
    assert json.loads(ours) == theirs
    assert list(json.loads(ours)) == ["created", "author", "architecture", "variant", "os", "config", "rootfs",
                                      "history"]
    labels = imagetool("inspect", "--config", "--format", "{{json .Config.Labels}}", ref).stdout.strip()
    assert labels == '{"alpha":"first","mid":"\\u003c\\u0026\\u003e","zeta":"last"}'
    assert imagetool("inspect", "--config", "--format", "{{json .Created}}", ref).stdout.strip() \
        == '"2023-03-21T13:25:08.73914Z"'


def test_created_prints_as_go_prints_it(tmp_path: Path) -> None:
    """Trailing zeros of the fraction dropped (`08.73914Z`), nanoseconds kept, offsets kept: skopeo's output."""
    for n, created in enumerate(("2023-03-21T13:25:08.739140Z", "2023-03-21T13:25:08.000000000Z",
                                 "2023-03-21T13:25:08.123456789Z", "2023-03-21T15:25:08.5+02:00",
                                 "2023-03-21T13:25:08Z")):
        ref = _config_image(tmp_path / str(n), {"created": created, "architecture": "amd64", "os": "linux"})
        ours, theirs = (json.loads(run("inspect", ref).stdout)["Created"] for run in (imagetool, skopeo))
        assert ours == theirs, created
        fmt = "{{.Created}}"
        assert imagetool("inspect", "--format", fmt, ref).stdout == skopeo("inspect", "--format", fmt, ref).stdout
    assert theirs == "2023-03-21T13:25:08Z"


@pytest.mark.parametrize("config", [False, True])
def test_template_errors_exit_1_and_are_never_printed_as_text(images: Path, config: bool) -> None:
    ref = f"oci:{images}:rand"
    flags = ["--config"] if config else []
    for template, words in [("{{.Digest", "unclosed action"), ("x {{.Os}} {{", "unclosed action"),
                            ("{{.Nope}}", "can't evaluate field Nope"), ("{{.Config.Nope}}", "can't evaluate field")]:
        ours = imagetool("inspect", *flags, "--format", template, ref, check=False)
        theirs = skopeo("inspect", *flags, "--format", template, ref, check=False)
        assert ours.returncode == theirs.returncode == 1, template
        assert ours.stdout == "" and words in one_line_error(ours), template


def test_tags_are_listed_while_the_config_is_read(tmp_path: Path) -> None:
    """The tag listing is not one more round trip after the config: it runs beside the config read, and its
    failure is still the command's."""
    import threading

    from imagetool.errors import RegistryError
    from imagetool.inspect import inspect_image
    from imagetool.transports import parse_image_name
    from imagetool.transports.base import SystemContext

    random_image(tmp_path / "lay", "v1", n_layers=1)
    layout = parse_image_name(f"oci:{tmp_path}/lay:v1")
    listing = threading.Event()

    class Source:
        def __init__(self, fail: bool) -> None:
            self.inner = layout.open_source(SystemContext())
            self.fail = fail

        def get_manifest(self, instance: object = None) -> tuple[bytes, str]:
            return self.inner.get_manifest(instance)  # type: ignore[arg-type]

        def get_blob(self, desc: object) -> object:
            assert listing.wait(10), "the config was read before the tags were asked for"
            return self.inner.get_blob(desc)  # type: ignore[arg-type]

        def repo_tags(self) -> list[str]:
            listing.set()
            if self.fail:
                raise RegistryError("listing tags: denied")
            return ["v1", "v2"]

        def close(self) -> None:
            self.inner.close()

    class Ref:
        def __init__(self, fail: bool) -> None:
            self.fail = fail

        def open_source(self, ctx: SystemContext) -> Source:
            return Source(self.fail)

        def docker_reference(self) -> None:
            return None

    assert inspect_image(Ref(False), SystemContext())["RepoTags"] == ["v1", "v2"]  # type: ignore[arg-type]
    listing.clear()
    with pytest.raises(RegistryError, match="denied"):
        inspect_image(Ref(True), SystemContext())  # type: ignore[arg-type]
