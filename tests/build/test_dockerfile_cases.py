"""Every case in testdata/dockerfiles/ parses (or fails) the way its expect.json says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagetool.build import instructions as ins
from imagetool.build.config import ConfigState, apply
from imagetool.build.dockerfile import parse_file
from imagetool.build.stages import Scope, plan
from imagetool.errors import DockerfileError

CASES = Path(__file__).resolve().parents[2] / "testdata" / "dockerfiles"
ALL = sorted(p.name for p in CASES.iterdir() if p.is_dir())


def _load(case: str) -> tuple[Path, dict]:
    d = CASES / case
    expect = json.loads((d / "expect.json").read_text())
    return d / expect.get("dockerfile", "Dockerfile"), expect


def test_every_case_has_a_readme_and_expectations() -> None:
    assert len(ALL) >= 15
    for case in ALL:
        assert (CASES / case / "README").read_text().strip(), case
        assert (CASES / case / "expect.json").is_file(), case


@pytest.mark.parametrize("case", ALL)
def test_case(case: str) -> None:
    path, expect = _load(case)
    if "error" in expect:
        with pytest.raises(DockerfileError) as info:
            parse_file(path)
        assert info.value.line == expect["error"]["line"], str(info.value)
        assert expect["error"]["contains"] in str(info.value)
        assert f"{path}:{expect['error']['line']}:" in str(info.value)
        return
    df = parse_file(path)
    if "instructions" in expect:
        assert [[i.line, i.keyword] for i in df.instructions] == expect["instructions"]
    if "escape" in expect:
        assert df.escape == expect["escape"]
    if "plan_error" in expect:
        with pytest.raises(DockerfileError) as info:
            plan(df, target=expect.get("target"))
        assert expect["plan_error"]["contains"] in str(info.value)
        if "line" in expect["plan_error"]:
            assert info.value.line == expect["plan_error"]["line"]
            assert f"{path}:{info.value.line}:" in str(info.value)
        return
    by_line = {i.line: i for i in df.instructions}
    for line, text in expect.get("run", {}).items():
        assert by_line[int(line)].command.shell == text  # type: ignore[union-attr]
    for line, docs in expect.get("heredocs", {}).items():
        got = [[h.name, h.content, h.expand, h.chomp] for h in by_line[int(line)].heredocs]  # type: ignore
        assert got == docs
    for line, types in expect.get("mounts", {}).items():
        assert [m.type for m in by_line[int(line)].mounts] == types  # type: ignore[union-attr]
    p = plan(df)
    assert [s.ref for s in p.stages] == expect["stages"]
    assert [p.stages[n].ref for n in p.needed] == expect["needed"]
    for target, needed in expect.get("targets", {}).items():
        tp = plan(df, target=target)
        assert [tp.stages[n].ref for n in tp.needed] == needed
    states = _evaluate(p, expect.get("base_env", []))
    for line, hc in expect.get("healthchecks", {}).items():
        stage = next(s for s in p.stages if any(i.line == int(line) for i in s.instructions))
        assert states[stage.index].config["Healthcheck"] == hc
    if "config" in expect:
        cfg = states[p.target].config
        for key, value in expect["config"].items():
            assert cfg.get(key) == value, key


def _evaluate(p, base_env: list[str]) -> dict[int, ConfigState]:  # type: ignore[no-untyped-def]
    """Apply each needed stage's config-only instructions, as the executor does around RUN/COPY."""
    states: dict[int, ConfigState] = {}
    for n in range(len(p.stages)):
        st = p.stages[n]
        if st.base_stage is not None:
            base = states[st.base_stage]
            state = ConfigState(json.loads(json.dumps(base.config)), base.author, base.shell)
        else:
            state = ConfigState.from_image({"config": {"Env": list(base_env)}} if base_env else None)
        scope = Scope(p.global_args, p.build_args, state.env())
        for i in st.instructions:
            if not apply(state, i, scope):
                assert isinstance(i, (ins.Run, ins.Copy))
        states[n] = state
    return states
