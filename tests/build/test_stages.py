"""The stage graph, --target, and ARG scoping with --build-arg and the predefined args."""

from __future__ import annotations

import pytest

from imagetool.build import instructions as ins
from imagetool.build.dockerfile import parse
from imagetool.build.stages import Scope, plan, platform_args
from imagetool.descriptor import Platform
from imagetool.errors import DockerfileError


def walk(text: str, build_args: dict[str, str] | None = None, stage: int = -1,
         env: dict[str, str] | None = None) -> Scope:
    p = plan(parse(text), build_args)
    scope = Scope(p.global_args, p.build_args, env)
    for i in p.stages[stage].instructions:
        if isinstance(i, ins.Arg):
            scope.declare(i)
        elif isinstance(i, ins.Env):
            scope.set_env(i)
    return scope


def test_global_args_only_reach_from_lines() -> None:
    text = "ARG V=1\nARG IMG=busybox\nFROM $IMG:$V\nRUN echo $V\n"
    p = plan(parse(text))
    assert p.stages[0].base == "busybox:1"
    assert "V" not in walk(text).vars()
    assert walk(text + "ARG V\n").vars()["V"] == "1"
    assert walk(text + "ARG V\n", {"V": "2"}).vars()["V"] == "2"
    assert plan(parse(text), {"V": "2", "IMG": "alpine"}).stages[0].base == "alpine:2"


def test_stage_arg_defaults_build_args_and_env_precedence() -> None:
    text = "FROM busybox\nARG A=default\nARG B\nARG C=$A-c\nENV A=from-env\n"
    s = walk(text)
    assert s.vars() == {"A": "from-env", "C": "default-c"}   # B declared without a value: unset
    s = walk(text, {"A": "cli", "B": "b"})
    assert s.args == {"A": "cli", "B": "b", "C": "cli-c"} and s.vars()["A"] == "from-env"
    # ENV from the base image also beats ARG
    assert walk("FROM busybox\nARG PATH=/x\n", env={"PATH": "/bin"}).vars()["PATH"] == "/bin"


def test_env_values_see_the_state_before_the_instruction() -> None:
    s = walk("FROM busybox\nENV A=1\nENV A=2 B=$A\n")
    assert s.env == {"A": "2", "B": "1"}


def test_run_env_has_args_and_undeclared_proxy_args() -> None:
    s = walk("FROM busybox\nARG X=1\nENV X=2 Y=3\nARG Z\n", {"Z": "z", "HTTP_PROXY": "http://p:3128",
                                                             "OTHER": "o"})
    env = s.run_env()
    assert "X=2" in env and "Y=3" in env and "Z=z" in env and "HTTP_PROXY=http://p:3128" in env
    assert not any(e.startswith("OTHER=") for e in env)
    assert not any(e.startswith("HTTP_PROXY=") for e in walk("FROM busybox\n").run_env())


def test_unused_build_args_are_reported_but_proxy_args_are_not() -> None:
    p = plan(parse("ARG G\nFROM busybox\nARG USED\n"), {"G": "1", "USED": "1", "NOPE": "1", "no_proxy": "x"})
    assert p.unused_args == ("NOPE",)


def test_platform_args_are_predefined_globally() -> None:
    build = Platform("arm64", "linux", "v8")
    target = Platform("amd64", "linux")
    args = platform_args(build, target)
    assert args["BUILDPLATFORM"] == "linux/arm64/v8" and args["TARGETARCH"] == "amd64"
    text = "FROM --platform=$BUILDPLATFORM busybox:$TARGETARCH\nARG TARGETOS\nARG BUILDARCH\n"
    p = plan(parse(text), build_platform=build, target_platform=target)
    assert p.stages[0].platform == "linux/arm64/v8" and p.stages[0].base == "busybox:amd64"
    assert walk(text).vars()["TARGETOS"] == "linux"


def test_stage_graph_and_targets() -> None:
    text = ("FROM busybox AS a\nFROM a AS b\nFROM scratch AS c\nCOPY --from=b /x /x\n"
            "FROM busybox AS d\nRUN --mount=type=bind,from=c,target=/c true\nFROM busybox\nCOPY --from=0 / /\n")
    p = plan(parse(text))
    b, c, d = p.stages[1], p.stages[2], p.stages[3]
    assert b.base_stage == 0 and c.is_scratch and c.stage_deps == (1,) and d.stage_deps == (2,)
    assert p.needed == (0, 4)
    assert plan(parse(text), target="d").needed == (0, 1, 2, 3)
    assert plan(parse(text), target="C").needed == (0, 1, 2)
    assert plan(parse(text), target="1").needed == (0, 1)
    assert p.stage("b").index == 1


def test_copy_from_an_image_or_an_expanded_stage_name() -> None:
    text = "FROM busybox AS build\nFROM busybox\nARG SRC=build\nCOPY --from=$SRC /a /a\nCOPY --from=alpine:3 /b /b\n"
    st = plan(parse(text)).stages[1]
    assert st.stage_deps == (0,) and st.image_deps == ("alpine:3",)
    st = plan(parse(text), {"SRC": "docker.io/library/debian:12"}).stages[1]
    assert st.stage_deps == () and st.image_deps == ("docker.io/library/debian:12", "alpine:3")


@pytest.mark.parametrize("text,target,line,message", [
    ("FROM busybox\nFROM 1\n", None, 2, "FROM 1: refers to the current or a later build stage"),
    ("FROM busybox\nCOPY --from=0 /a /a\n", None, 2, "refers to the current or a later build stage"),
    ("FROM busybox\nCOPY --from=5 /a /a\n", None, 2, "current or a later build stage"),
    ("FROM busybox\nCOPY --from=Not_An_Image! /a /a\n", None, 2, "neither a build stage nor a valid image"),
    ("FROM busybox\nRUN --mount=from=later,target=/x true\nFROM busybox AS later\n", None, 2, "later build stage"),
    ("FROM UPPER:case\n", None, 1, "invalid base image"),
    ("ARG IMG\nFROM $IMG\n", None, 2, "empty image"),
    ("FROM busybox AS a\n", "b", None, "target stage 'b' could not be found (stages: a)"),
])
def test_stage_errors(text: str, target: str | None, line: int | None, message: str) -> None:
    with pytest.raises(DockerfileError) as info:
        plan(parse(text, path="Containerfile"), target=target)
    assert message in str(info.value)
    assert info.value.line == line
    assert str(info.value).startswith("Containerfile")


def test_a_stage_name_given_twice_means_its_latest_stage() -> None:
    """BuildKit builds such a file (its checks only warn): FROM, COPY --from and --target then mean
    the latest stage of that name declared so far."""
    text = ("FROM busybox AS x\nFROM busybox AS user1\nCOPY --from=x /a /a\n"
            "FROM alpine AS x\nFROM x AS user2\nCOPY --from=x /b /b\n")
    p = plan(parse(text))
    assert p.stages[1].stage_deps == (0,) and p.stages[3].base_stage == 2 and p.stages[3].stage_deps == (2,)
    assert any("duplicate stage name 'x'" in w for w in p.warnings)
    assert plan(parse(text), target="x").target == 2


def test_from_a_stage_number() -> None:
    """buildah's extension: FROM <index> builds on that earlier stage."""
    p = plan(parse("FROM busybox\nRUN true\nFROM 0\nRUN true\n"))
    assert p.stages[1].base_stage == 0 and p.needed == (0, 1)


def test_from_platform_that_expands_to_no_platform_is_a_dockerfile_error() -> None:
    """`FROM --platform=linux/$ARCH` with ARCH unset names no platform: one line with the file and
    line (it was an internal error from the platform parser)."""
    text = "ARG ARCH\nFROM --platform=linux/$ARCH busybox AS foreign\nFROM busybox\n"
    with pytest.raises(DockerfileError, match=r"Dockerfile:2: FROM --platform=linux/: invalid platform"):
        plan(parse(text))
    assert plan(parse(text), {"ARCH": "arm64"}).stages[0].platform == "linux/arm64"
