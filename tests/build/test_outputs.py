"""`build -o` values, as BuildKit and buildah read them."""

from __future__ import annotations

import pytest

from imagetool.build.outputs import RootfsOutput, parse_output, platform_dir
from imagetool.errors import UsageError


def test_output_values() -> None:
    assert parse_output("type=local,dest=out") == RootfsOutput("local", "out")
    assert parse_output("type=tar,dest=-") == RootfsOutput("tar", "-")
    assert parse_output("dest=f.tar,type=tar") == RootfsOutput("tar", "f.tar")
    assert parse_output("./dir") == RootfsOutput("local", "./dir")  # a bare path: type=local
    assert parse_output("-") == RootfsOutput("tar", "-")              # docker's shorthand for a tar on stdout
    assert platform_dir("linux/arm64/v8") == "linux_arm64_v8"
    for bad, words in (("type=image,name=x", "not supported"), ("type=local", "no dest"),
                       ("type=local,dest=-", "needs a directory"), ("type=tar,dest=x,compression=zstd", "unknown"),
                       ("oci:layout:v1", "-t oci:layout:v1"), ("docker-archive:a.tar", "-t docker-archive:")):
        with pytest.raises(UsageError, match=words):
            parse_output(bad)
