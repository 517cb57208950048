"""A Dockerfile -> typed instructions with line numbers, checked the way Docker checks them.

dockerfile-parse groups lines into instructions (directives, comments, continuations);
heredoc bodies, which it does not know, are cut out first and attached to their
instruction, and every line it silently drops (an instruction with no arguments) is
found again here so that the error can name it.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

from dockerfile_parse import DockerfileParser

from imagetool.build import instructions as ins
from imagetool.build.arguments import KEYWORDS, heredoc_marker, parse_instruction
from imagetool.build.expand import ExpansionError, split_words
from imagetool.errors import DockerfileError

_DIRECTIVE = re.compile(r"^\s*#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.*?)\s*$")
_COMMENT = re.compile(r"^\s*#")
HEREDOC_KEYWORDS = ("RUN", "COPY", "ADD")


@dataclass(frozen=True)
class Dockerfile:
    """Parsed instructions (ARGs before the first FROM included) and the file's directives."""

    instructions: tuple[ins.AnyInstruction, ...]
    escape: str = "\\"
    path: str = "Dockerfile"
    syntax: str | None = None

    @property
    def global_args(self) -> tuple[ins.Arg, ...]:
        out = []
        for i in self.instructions:
            if isinstance(i, ins.From):
                break
            out.append(i)
        return tuple(out)  # type: ignore[arg-type]


def directives(lines: list[str]) -> dict[str, str]:
    """`# escape=` and `# syntax=` at the very top; any other line ends the directive block."""
    found: dict[str, str] = {}
    for line in lines:
        m = _DIRECTIVE.match(line)
        if not m or m.group(1).lower() not in ("escape", "syntax", "check"):
            break
        key = m.group(1).lower()
        if key in found:
            raise DockerfileError(f"only one {key} parser directive can be used", lines.index(line) + 1)
        found[key] = m.group(2)
    escape = found.get("escape", "\\")
    if escape not in ("\\", "`"):
        raise DockerfileError(f"invalid escape token {escape!r}: it must be \\ or `", 1)
    found["escape"] = escape
    return found


def _continues(line: str, escape: str) -> bool:
    return line.rstrip().endswith(escape) and not _COMMENT.match(line)


def cut_heredocs(lines: list[str], escape: str) -> tuple[list[str], dict[int, tuple[ins.Heredoc, ...]]]:
    """Blank out heredoc bodies; return the remaining lines and bodies by their instruction's first line."""
    out = list(lines)
    found: dict[int, tuple[ins.Heredoc, ...]] = {}
    i, start, text = 0, None, ""
    while i < len(lines):
        line = lines[i]
        i += 1
        if start is None:
            if not line.strip() or _COMMENT.match(line):
                continue
            start, text = i, ""
        elif _COMMENT.match(line):
            continue
        elif not line.strip():
            out[i - 1] = "#\n"  # Docker skips empty lines inside a continuation; dockerfile-parse would stop
            continue
        text += line.rstrip("\n")
        if _continues(line, escape):
            text = text.rstrip()[:-1]
            continue
        first, logical, start = start, text, None
        words = logical.split(None, 1)
        keyword = words[0].upper() if words else ""
        if keyword == "ONBUILD" and len(words) > 1:
            words = words[1].split(None, 1)
            keyword = words[0].upper()
        if keyword not in HEREDOC_KEYWORDS:
            continue
        try:
            markers = [m for w in split_words(logical, escape) if (m := heredoc_marker(w))]
        except ExpansionError:
            continue
        docs = []
        for name, expand, chomp in markers:
            body = []
            while True:
                if i >= len(lines):
                    raise DockerfileError(f"unterminated heredoc <<{name} (no line {name!r} follows)", first)
                raw = lines[i].rstrip("\n")
                out[i] = "\n"
                i += 1
                check = raw.lstrip("\t") if chomp else raw
                if check == name:
                    break
                body.append(check + "\n")
            docs.append(ins.Heredoc(name, "".join(body), expand, chomp))
        if docs:
            found[first] = tuple(docs)
    return out, found


def _unparsed_lines(lines: list[str], covered: set[int]) -> list[int]:
    return [n for n, line in enumerate(lines, 1)
            if n not in covered and line.strip() and not _COMMENT.match(line)]


def parse(text: str, path: str = "Dockerfile") -> Dockerfile:
    """Parse and check a Dockerfile; errors name `path` and the line."""
    try:
        return _parse(text, path)
    except DockerfileError as err:
        if err.file != path:
            raise DockerfileError(err.reason, err.line, path) from err
        raise


def _parse(text: str, path: str) -> Dockerfile:
    text = text.removeprefix("\ufeff").replace("\r\n", "\n")
    lines = text.splitlines(keepends=True)
    found = directives(lines)
    escape = found["escape"]
    masked, heredocs = cut_heredocs(lines, escape)
    # the stubs say IO[str]; the parser reads and writes bytes (b2u/u2b)
    parser = DockerfileParser(fileobj=io.BytesIO("".join(masked).encode()))  # type: ignore[arg-type]
    covered: set[int] = {n for n, line in enumerate(masked, 1) if line == "\n" and lines[n - 1] != "\n"}
    result: list[ins.AnyInstruction] = []
    for item in parser.structure:
        if item["instruction"] == "COMMENT":
            covered.add(item["startline"] + 1)
            continue
        first, last = item["startline"] + 1, item["endline"] + 1
        covered.update(range(first, last + 1))
        keyword = item["instruction"]
        if keyword not in KEYWORDS:
            raise DockerfileError(f"unknown instruction: {keyword}", first)
        original = _join(item["content"], escape)
        result.append(parse_instruction(keyword, item["value"], first, original, escape,
                                        heredocs.get(first, ())))
    for n in _unparsed_lines(masked, covered):
        word = masked[n - 1].split()[0].upper()
        if word in KEYWORDS:
            raise DockerfileError(f"{word} requires at least one argument", n)
        raise DockerfileError(f"unknown instruction: {word}", n)
    _check_order(result)
    return Dockerfile(tuple(result), escape, path, found.get("syntax"))


def _join(content: str, escape: str) -> str:
    """An instruction's text with continuations joined and comment lines dropped (history's created_by)."""
    parts = []
    for line in content.splitlines():
        if _COMMENT.match(line):
            continue
        stripped = line.rstrip()
        parts.append(stripped[:-1] if stripped.endswith(escape) else stripped)
    return "".join(parts).strip()


def _check_order(result: list[ins.AnyInstruction]) -> None:
    if not result:
        raise DockerfileError("the Dockerfile has no instructions")
    for i in result:
        if isinstance(i, ins.From):
            return
        if not isinstance(i, ins.Arg):
            raise DockerfileError(f"{i.keyword} before the first FROM: only ARG may come before FROM",
                                  i.line)
    raise DockerfileError("no FROM instruction: a build stage must start with FROM", result[-1].line)


def parse_file(path: str | Path) -> Dockerfile:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise DockerfileError("no such file", file=str(path)) from err
    except UnicodeDecodeError as err:
        raise DockerfileError(f"not UTF-8 text ({err.reason} at byte {err.start})", file=str(path)) from err
    return parse(text, str(path))


def parse_files(paths: list[Path]) -> Dockerfile:
    """One Dockerfile, or several (-f given more than once) read as one: lines count through them all."""
    if len(paths) == 1:
        return parse_file(paths[0])
    texts = []
    for path in paths:
        try:
            texts.append(Path(path).read_text(encoding="utf-8"))
        except OSError as err:
            raise DockerfileError(err.strerror or "cannot be read", file=str(path)) from err
        except UnicodeDecodeError as err:
            raise DockerfileError(f"not UTF-8 text ({err.reason} at byte {err.start})", file=str(path)) from err
    return parse("".join(t if t.endswith("\n") or not t else t + "\n" for t in texts),
                 " + ".join(str(p) for p in paths))


def parse_line(text: str, line: int = 1, escape: str = "\\") -> ins.AnyInstruction:
    """One instruction on its own (`--change` values of import and commit)."""
    keyword, _, rest = text.strip().partition(" ")
    if not keyword:
        raise DockerfileError("empty instruction", line, file="change")
    try:
        return parse_instruction(keyword, rest, line, text.strip(), escape)
    except DockerfileError as err:
        raise DockerfileError(err.reason, None, file=f"change {text.strip()!r}") from err
