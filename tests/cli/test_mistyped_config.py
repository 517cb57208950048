"""An image whose config has a field of the wrong type: every command that reads it says so in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.lib.cli import imagetool, one_line_error
from tests.lib.images import random_layer, write_image


@pytest.mark.parametrize("config,field", [({"Env": 1}, "Env"), ({"Cmd": "sh"}, "Cmd"),
                                          ({"Labels": {"a": 1}}, "Labels"), ({"WorkingDir": ["/"]}, "WorkingDir")])
def test_mistyped_config_field_is_one_line(tmp_path: Path, local_store: Path, config: dict, field: str) -> None:
    write_image(tmp_path / "bad", "v1", [random_layer(512, 1, "gzip", True)], config=config)
    imagetool("copy", "-q", f"oci:{tmp_path}/bad:v1", "localhost/bad:v1")  # copying does not read the fields
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM localhost/bad:v1\nRUN true\n")
    for argv in (["inspect", f"oci:{tmp_path}/bad:v1"], ["run", "--rm", "localhost/bad:v1", "true"],
                 ["build", "--pull", "never", str(ctx)]):
        proc = imagetool(*argv, check=False)
        assert proc.returncode != 0
        assert f"image config: {field} is not" in one_line_error(proc), argv
        assert "internal error" not in proc.stderr
