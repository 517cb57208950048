"""Walking a stage: the work each RUN/COPY hands the executor, ONBUILD triggers, and cache keys."""

from __future__ import annotations

from pathlib import Path

from imagetool.build.cache import base_key
from imagetool.build.context import BuildContext
from imagetool.build.dockerfile import parse, parse_file
from imagetool.build.stages import plan
from imagetool.build.stagewalker import CopyWork, RunWork, StageResult, StageWalker

CASES = Path(__file__).resolve().parents[2] / "testdata" / "dockerfiles"
BASE = {"config": {"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["/bin/sh"]}}


def walk(text: str, build_args: dict[str, str] | None = None, context: Path | None = None,
         base: dict | None = None) -> list:  # type: ignore[type-arg]
    p = plan(parse(text), build_args)
    results: dict[int, StageResult] = {}
    steps = []
    for n in p.needed:
        st = p.stages[n]
        w = StageWalker(p, st, BuildContext(context) if context else None, base_key(st.base, None),
                        None if st.is_scratch else (base or BASE), results)
        steps += list(w)
        results[n] = w.result()
    return steps


def by_line(steps: list) -> dict:  # type: ignore[type-arg]
    return {s.instruction.line: s for s in steps}


def test_heredoc_runs_and_copies() -> None:
    p = plan(parse_file(CASES / "heredocs" / "Dockerfile"))
    w = StageWalker(p, p.stages[0], None, base_key("busybox", None), BASE)
    s = {st.instruction.line: st for st in w}
    assert s[3].work.argv == ("/bin/sh", "-c", 'echo "hello $NAME" > /greeting\n')
    assert s[6].work.argv == ("/dev/pipes/SCRIPT",)
    assert s[6].work.files[0][0] == "/dev/pipes/SCRIPT" and s[6].work.files[0][1].startswith("#!/bin/sh\n")
    assert s[10].work.argv == ("/bin/sh", "-c", "cat <<EOF > /file.txt\nline one\nline two\nEOF")
    assert s[14].work == CopyWork((), "/etc/motd", files=(("EOT", "welcome to world\n"),))
    assert not s[14].work.dest_is_dir
    assert s[17].work.files == (("one.txt", "first\n"), ("two.txt", "second\n")) and s[17].work.dest_is_dir
    assert s[22].label == "STEP 8/8: RUN cat /greeting /file.txt /etc/motd"


def test_run_work_has_the_stage_state() -> None:
    s = by_line(walk("FROM busybox\nARG V=1\nENV A=$V\nWORKDIR /w\nUSER 5\nRUN --network=none env\n"
                     'RUN ["echo", "$A"]\n'))
    run = s[6].work
    assert isinstance(run, RunWork)
    assert run.argv == ("/bin/sh", "-c", "env") and run.network == "none"
    assert {"V=1", "A=1", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"} <= set(run.env)
    assert (run.workdir, run.user) == ("/w", "5")
    assert s[7].work.argv == ("echo", "$A")          # exec form: no shell, no expansion
    shell = by_line(walk('FROM busybox\nSHELL ["/bin/ash", "-eo", "pipefail", "-c"]\nRUN a | b\n'))
    assert shell[3].work.argv == ("/bin/ash", "-eo", "pipefail", "-c", "a | b")


def test_mounts_resolve_stages_and_defaults() -> None:
    text = (CASES / "run-flags" / "Dockerfile").read_text()
    s = by_line(walk(text))
    cache = s[7].work.mounts[0]
    assert (cache.type, cache.target, cache.id, cache.sharing) == ("cache", "/var/cache/app", "appcache", "locked")
    bind = s[8].work.mounts[0]
    assert (bind.from_stage, bind.source, bind.target, bind.readonly) == (0, "/deps", "/mnt/deps", True)
    assert s[9].work.mounts[0].readonly is False
    secret = s[10].work.mounts[0]
    assert (secret.target, secret.required) == ("/run/secrets/token", True)
    assert s[11].work.mounts[0].mode == 0o400
    assert s[12].work.mounts[0].size == 1 << 20


def test_copy_destinations_follow_workdir() -> None:
    s = by_line(walk("FROM busybox\nARG D=out\nWORKDIR /app\nCOPY a .\nCOPY a b\nCOPY a b c/\n"
                     "COPY --chmod=640 --chown=1:2 a /abs/$D\nCOPY a b /x\nCOPY --from=busybox:1 /bin/sh sub/\n"))
    assert s[4].work.dest == "/app/" and s[5].work.dest == "/app/b" and not s[5].work.dest_is_dir
    assert s[6].work.dest == "/app/c/"
    assert (s[7].work.dest, s[7].work.chmod, s[7].work.chown) == ("/abs/out", 0o640, "1:2")
    assert s[8].work.dest_is_dir
    assert (s[9].work.from_image, s[9].work.dest) == ("busybox:1", "/app/sub/")


def test_add_separates_urls() -> None:
    s = by_line(walk("FROM busybox\nADD --checksum=sha256:00 https://example.com/a.tgz local.tar /d/\n"))
    work = s[2].work
    assert work.add and work.urls == ("https://example.com/a.tgz",) and work.sources == ("local.tar",)
    assert work.checksum == "sha256:00"


def test_onbuild_triggers_run_first_and_are_not_inherited() -> None:
    base = {"config": {"Env": ["PATH=/bin"], "OnBuild": ["ARG GREETING=hi", "RUN echo $GREETING"]}}
    steps = walk("FROM parent\nRUN true\n", base=base)
    assert [s.instruction.original for s in steps] == ["ARG GREETING=hi", "RUN echo $GREETING", "RUN true"]
    assert [s.number for s in steps] == [2, 3, 4] and steps[0].total == 4
    assert "GREETING=hi" in steps[1].work.env
    p = plan(parse("FROM parent\n"))
    w = StageWalker(p, p.stages[0], None, "k", base)
    list(w)
    assert "OnBuild" not in w.result().state.config


def test_cache_keys_chain(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("1")
    (tmp_path / "b").write_text("2")
    text = "FROM busybox\nARG V=1\nRUN echo $V\nCOPY a /a\nRUN cat /a\nCOPY b /b\n"
    first = [s.key for s in walk(text, context=tmp_path)]
    assert first == [s.key for s in walk(text, context=tmp_path)]       # stable
    assert len(set(first)) == len(first)
    changed = [s.key for s in walk(text, {"V": "2"}, context=tmp_path)]
    assert changed[0] != first[0] and all(a != b for a, b in zip(first, changed, strict=True))
    (tmp_path / "b").write_text("changed")
    after = [s.key for s in walk(text, context=tmp_path)]
    assert after[:4] == first[:4] and after[4] != first[4]                  # only the COPY b step and on
    (tmp_path / "a").write_text("changed")
    assert [s.key for s in walk(text, context=tmp_path)][:2] == first[:2]
    assert [s.key for s in walk(text, context=tmp_path)][2] != first[2]


def test_copy_from_stage_key_follows_that_stage() -> None:
    text = "FROM busybox AS a\nARG X=1\nRUN echo $X\nFROM busybox\nCOPY --from=a /x /x\n"
    one = walk(text)[-1]
    assert one.work.from_stage == 0
    assert walk(text, {"X": "2"})[-1].key != one.key
    assert walk(text)[-1].key == one.key


def test_run_with_a_context_bind_follows_the_bound_files(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a").write_text("1")
    (tmp_path / "other").write_text("x")
    text = "FROM busybox\nRUN --mount=type=bind,source=src,target=/src cat /src/a\n"
    first = walk(text, context=tmp_path)[0].key
    (tmp_path / "other").write_text("not bound")
    assert walk(text, context=tmp_path)[0].key == first
    (tmp_path / "src" / "a").write_text("2")
    assert walk(text, context=tmp_path)[0].key != first
