"""Parsing details and errors that name their line."""

from __future__ import annotations

import dataclasses

import pytest

from imagetool.build import instructions as ins
from imagetool.build.dockerfile import parse, parse_line
from imagetool.errors import BuildError, DockerfileError


def one(text: str) -> ins.AnyInstruction:
    return parse("FROM busybox\n" + text).instructions[1]


def test_keywords_are_case_insensitive_and_lines_are_one_based() -> None:
    df = parse("from busybox as Build\n\n\nrun echo hi\n")
    assert isinstance(df.instructions[0], ins.From) and df.instructions[0].name == "build"
    assert df.instructions[1].line == 4 and df.instructions[1].keyword == "RUN"


def test_exec_and_shell_forms() -> None:
    assert one('CMD ["a", "b c"]').command == ins.Command(argv=("a", "b c"))  # type: ignore[union-attr]
    assert one("CMD a b").command == ins.Command(shell="a b")  # type: ignore[union-attr]
    # not valid JSON: Docker falls back to the shell form
    assert one("CMD [a, b]").command == ins.Command(shell="[a, b]")  # type: ignore[union-attr]
    assert one('ENTRYPOINT []').command == ins.Command(argv=())  # type: ignore[union-attr]


def test_config_command_lists() -> None:
    assert ins.Command(shell="echo $X").to_list(("/bin/sh", "-c")) == ["/bin/sh", "-c", "echo $X"]
    assert ins.Command(argv=("a",)).to_list(("/bin/sh", "-c")) == ["a"]


def test_copy_flags() -> None:
    c = one("COPY --from=build --chown=app:app --chmod=755 --link a b/ /dst/")
    assert isinstance(c, ins.Copy) and not isinstance(c, ins.Add)
    assert (c.from_, c.chown, c.chmod, c.link, c.sources, c.dest) == ("build", "app:app", "755", True,
                                                                     ("a", "b/"), "/dst/")
    a = one("ADD --link=false --checksum=sha256:abc --keep-git-dir=false https://example.com/x.tar /x")
    assert isinstance(a, ins.Add) and a.checksum == "sha256:abc" and not a.link


@pytest.mark.parametrize("flag", ["--keep-git-dir", "--keep-git-dir=true"])
def test_add_keep_git_dir_is_refused_not_ignored(flag: str) -> None:
    """ADD never clones a git repository, so there is no .git to keep: say so rather than ignore the flag."""
    with pytest.raises(DockerfileError, match="--keep-git-dir: ADD of a git repository is not supported"):
        one(f"ADD {flag} https://example.com/repo.git /src")


def test_flag_values_may_be_quoted_and_keep_variables() -> None:
    r = one('RUN --mount=type=secret,id="my token" --network=$NET true')
    assert r.mounts[0].get("id") == "my token"  # type: ignore[union-attr]
    assert r.network is None or r.network == "$NET"  # type: ignore[union-attr]


def test_env_forms() -> None:
    assert one("ENV A=1 B='two words'").pairs == (("A", "1"), ("B", "'two words'"))  # type: ignore
    assert one("ENV KEY a value  with spaces").pairs == (("KEY", "a value  with spaces"),)  # type: ignore
    assert one("ARG A B=2").pairs == (("A", None), ("B", "2"))  # type: ignore[union-attr]


@pytest.mark.parametrize("text,line,message", [
    ("FROM busybox\nRUN true\nFOO bar\n", 3, "unknown instruction: FOO"),
    ("FROM busybox\nRUN\n", 2, "RUN requires"),
    ("FROM busybox\nCMD", 2, "CMD requires"),
    ("FROM busybox\nBOGUS", 2, "unknown instruction: BOGUS"),
    ("FROM busybox\nCOPY onlyone\n", 2, "at least two arguments"),
    ("FROM busybox\nCOPY --chmod=rwx a b\n", 2, "invalid --chmod"),
    ("FROM busybox\nCOPY --from a b\n", 2, "missing a value on flag --from"),
    ("FROM busybox\nCOPY --from=a --from=b a b\n", 2, "duplicate flag"),
    ("FROM busybox\nADD --from=x a b\n", 2, "unknown flag --from"),
    ("FROM busybox\nWORKDIR --x /a\n", 2, "unknown flag --x"),
    ("FROM busybox\nRUN --network=bridge true\n", 2, "invalid --network"),
    ("FROM busybox\nRUN --mount=type=cache true\n", 2, "needs a target"),
    ("FROM busybox\nRUN --mount=type=cache,target=/x,sharing=all true\n", 2, "invalid sharing"),
    ("FROM busybox\nRUN --mount=type=bind,target=/x,bogus=1 true\n", 2, "unexpected key"),
    ("FROM busybox\nHEALTHCHECK --interval=5 CMD true\n", 2, "invalid duration"),
    ("FROM busybox\nHEALTHCHECK --interval=10us CMD true\n", 2, "less than 1ms"),
    ("FROM busybox\nHEALTHCHECK --retries=-1 CMD true\n", 2, "negative"),
    ("FROM busybox\nHEALTHCHECK NONE x\n", 2, "takes no arguments"),
    ("FROM busybox\nHEALTHCHECK RUN true\n", 2, "unknown type"),
    ("FROM busybox\nONBUILD FROM x\n", 2, "isn't allowed as an ONBUILD trigger"),
    ("FROM busybox\nONBUILD ONBUILD RUN x\n", 2, "isn't allowed"),
    ("FROM busybox\nENV A=1 B\n", 2, "can't find ="),
    ("FROM busybox\nENV ONLYKEY\n", 2, "requires a value"),
    ("FROM busybox\nLABEL a=\"x\n", 2, "unmatched"),
    ("FROM busybox\n\n\nEXPOSE\n", 4, "EXPOSE requires"),
    ("FROM busybox\nVOLUME []\n", 2, "VOLUME requires at least one argument"),
    ("FROM busybox\nVOLUME [\"/a\", \" \"]\n", 2, "can not be an empty string"),
    ("FROM a b\n", 1, "FROM requires either one argument, or three"),
    ("FROM a AS b c\n", 1, "FROM requires"),
    ("RUN true\nFROM busybox\n", 1, "before the first FROM"),
    ("ARG A\n", 1, "no FROM"),
    ("# escape=x\nFROM busybox\n", 1, "invalid escape"),
    ("FROM busybox\nRUN echo a \\\n  b\nRUN <<EOF\nno end\n", 4, "unterminated heredoc"),
])
def test_errors_name_the_line(text: str, line: int, message: str) -> None:
    with pytest.raises(DockerfileError) as info:
        parse(text, path="ctx/Dockerfile")
    assert info.value.line == line, str(info.value)
    assert message in str(info.value)
    assert str(info.value).startswith(f"ctx/Dockerfile:{line}: ")
    assert isinstance(info.value, BuildError)


def test_crlf_line_endings() -> None:
    df = parse("FROM busybox\r\nRUN a \\\r\n  b\r\nRUN <<EOF\r\nx\r\nEOF\r\nUSER 1\r\n")
    assert df.instructions[1].command.shell == "a   b"  # type: ignore[union-attr]
    assert df.instructions[2].heredocs[0].content == "x\n"  # type: ignore[union-attr]
    assert [i.line for i in df.instructions] == [1, 2, 4, 7]


def test_empty_file() -> None:
    with pytest.raises(DockerfileError, match="no instructions"):
        parse("# only a comment\n\n")


def test_escape_directive_only_at_the_top() -> None:
    # after an instruction it is an ordinary comment: backslash stays the escape character
    df = parse("FROM busybox\n# escape=`\nRUN a \\\n b\n")
    assert df.escape == "\\" and df.instructions[1].command.shell == "a  b"  # type: ignore[union-attr]
    df = parse("# syntax=docker/dockerfile:1\n# escape=`\nFROM busybox\nRUN a `\n b\n")
    assert df.escape == "`" and df.syntax == "docker/dockerfile:1"
    assert df.instructions[1].command.shell == "a  b"  # type: ignore[union-attr]


def test_heredoc_after_continued_line_and_lines_after_it() -> None:
    df = parse("FROM busybox\nRUN --network=none \\\n  cat <<EOF >/x\nbody $A\nEOF\nUSER 1\n")
    run = df.instructions[1]
    assert isinstance(run, ins.Run) and run.network == "none"
    assert run.heredocs == (ins.Heredoc("EOF", "body $A\n", True, False),)
    assert df.instructions[2].line == 6 and isinstance(df.instructions[2], ins.User)


def test_heredoc_inside_quotes_is_no_heredoc() -> None:
    df = parse("FROM busybox\nRUN echo '<<EOF'\nUSER 1\n")
    assert df.instructions[1].heredocs == () and len(df.instructions) == 3  # type: ignore[union-attr]


def test_onbuild_trigger_is_parsed() -> None:
    o = one("ONBUILD COPY --chown=1:1 a /b")
    assert isinstance(o, ins.Onbuild) and isinstance(o.trigger, ins.Copy)
    assert o.expression == "COPY --chown=1:1 a /b" and o.trigger.chown == "1:1"


def test_instructions_are_frozen() -> None:
    r = one("RUN true")
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.line = 9  # type: ignore[misc]


def test_parse_line_for_changes() -> None:
    assert isinstance(parse_line('CMD ["/bin/sh"]'), ins.Cmd)
    with pytest.raises(DockerfileError, match="unknown instruction: NOPE"):
        parse_line("NOPE x")
