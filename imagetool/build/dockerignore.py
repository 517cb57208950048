""".dockerignore with Docker's semantics.

A pattern is cleaned and made relative to the context root; `*` and `?` stay inside one
path component, `**` spans any number of them (zero included), `\\` escapes. Patterns
apply in order and the last that matches wins, `!` patterns re-including; a pattern that
matches a directory matches everything under it.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_SPECIAL = set(".+()|{}$^")


@dataclass(frozen=True)
class Pattern:
    text: str
    exclusion: bool
    regex: re.Pattern[str]

    def match(self, path: str) -> bool:
        return self.regex.match(path) is not None


def _compile(pattern: str) -> re.Pattern[str]:
    out = ["^"]
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            if i < len(pattern) and pattern[i] == "*":
                i += 1
                if i < len(pattern) and pattern[i] == "/":
                    i += 1
                out.append(".*" if i >= len(pattern) else "(.*/)?")
            else:
                out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\":
            if i < len(pattern):
                out.append(re.escape(pattern[i]))
                i += 1
            else:
                out.append(re.escape("\\"))
        elif ch == "[":
            end = pattern.find("]", i)
            if end < 0:
                out.append(re.escape(ch))
                continue
            body = pattern[i:end]
            i = end + 1
            if body.startswith(("^", "!")):
                body = "^" + body[1:].replace("\\", "\\\\")
            else:
                body = body.replace("\\", "\\\\")
            out.append(f"[{body}]")
        elif ch in _SPECIAL:
            out.append("\\" + ch)
        else:
            out.append(ch)
    out.append("$")
    return re.compile("".join(out), re.DOTALL)


def parse(text: str) -> list[Pattern]:
    """Read .dockerignore text: `#` comments, blank lines skipped, `!` exceptions, leading `/` dropped."""
    patterns = []
    for n, line in enumerate(text.splitlines()):
        if n == 0:
            line = line.removeprefix("\ufeff")
        if line.startswith("#"):
            continue
        line = line.strip()
        if not line:
            continue
        invert = line.startswith("!")
        if invert:
            line = line[1:].strip()
        if line:
            line = posixpath.normpath(line)
            if len(line) > 1 and line.startswith("/"):
                line = line.lstrip("/") or "."
        patterns.append(Pattern(line, invert, _compile(line)))
    return patterns


class Matcher:
    """Answers "is this context path excluded?" for paths relative to the context root."""

    def __init__(self, patterns: Iterable[Pattern]) -> None:
        self.patterns = list(patterns)

    @classmethod
    def from_text(cls, text: str) -> Matcher:
        return cls(parse(text))

    def excluded(self, path: str) -> bool:
        path = posixpath.normpath(path.lstrip("/"))
        parent = posixpath.dirname(path)
        parents = parent.split("/") if parent else []
        matched = False
        for p in self.patterns:
            if p.exclusion != matched:
                continue
            hit = p.match(path)
            if not hit:
                hit = any(p.match("/".join(parents[: i + 1])) for i in range(len(parents)))
            if hit:
                matched = not p.exclusion
        return matched

    def may_include_under(self, directory: str) -> bool:
        """Whether an excluded directory must still be walked because an exception may re-include inside it.

        Conservative: only an exception whose leading components cannot match `directory`
        rules itself out (so node_modules/ is skipped unless a `!` pattern reaches into it).
        """
        parts = [p for p in directory.strip("/").split("/") if p]
        for pattern in self.patterns:
            if pattern.exclusion and _may_reach(pattern.text.split("/"), parts):
                return True
        return False


def _may_reach(pattern: list[str], parts: list[str]) -> bool:
    for i, name in enumerate(parts):
        if i >= len(pattern) or "**" in pattern[i]:
            return True
        if not _compile(pattern[i]).match(name):
            return False
    return True


def ignore_file(context: Path, dockerfile: Path | None) -> Path | None:
    """NAME.dockerignore beside the Dockerfile wins over the context's .dockerignore (.containerignore)."""
    if dockerfile is not None:
        specific = dockerfile.parent / (dockerfile.name + ".dockerignore")
        if specific.is_file():
            return specific
    for name in (".containerignore", ".dockerignore"):
        candidate = context / name
        if candidate.is_file():
            return candidate
    return None


def load(context: Path, dockerfile: Path | None = None) -> Matcher:
    path = ignore_file(context, dockerfile)
    return Matcher.from_text(path.read_text(encoding="utf-8")) if path else Matcher([])
