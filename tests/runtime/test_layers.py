"""Deep layer stacks: more lowerdirs than one page of mount options holds, and their precedence."""

from __future__ import annotations

import subprocess
from pathlib import Path

from imagetool.runtime.container import Container
from imagetool.runtime.image import layer_dirs, load
from imagetool.runtime.rootfs import MAX_MOUNT_DATA
from imagetool.runtime.spec import RunOptions, build_spec
from imagetool.store.layout import LayoutStore
from imagetool.transports.local import parse as parse_local


def test_many_layers(busybox: str, local_store: Path, tmp_path: Path) -> None:
    store = LayoutStore.open(local_store)
    image = load(store, parse_local("busybox").resolve(store))
    base = layer_dirs(store, image.layers)
    extra = []
    # 150 layers, each naming itself in /layers/which and adding its own file, with long paths
    for n in range(150):
        layer = tmp_path / ("layer-with-a-rather-long-directory-name-%03d" % n)
        (layer / "layers").mkdir(parents=True)
        (layer / "layers" / "which").write_text(f"{n}\n")
        (layer / "layers" / f"f{n}").write_text("")
        extra.append(layer)
    lowers = list(reversed(extra)) + base        # top first: layer 149 wins
    assert len(":".join(str(p) for p in lowers)) > MAX_MOUNT_DATA
    spec = build_spec(image.run_config, RunOptions(args=["sh", "-c", "cat /layers/which; ls /layers | wc -l; "
                                                                     "echo new > /layers/added"]))
    out = tmp_path / "out"
    with open(out, "wb") as f:
        code = Container(spec, lowers, tmp_path / "upper").run(stdout=f, stdin=subprocess.DEVNULL)
    assert code == 0
    assert out.read_text().split() == ["149", "151"]
    assert (tmp_path / "upper" / "layers" / "added").read_text() == "new\n"
