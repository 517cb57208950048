"""The subset of Go's text/template that skopeo and buildah users put in --format.

Supported: field chains (`{{.Labels.key}}`), `json`, `index`, `len`, `range ... end`,
`if ... else ... end`, `{{-`/`-}}` trimming. Values print the way Go prints them
(`map[k:v]`, `[a b]`, time as `2006-01-02 15:04:05 +0000 UTC`).
"""

from __future__ import annotations

import json
import re
import shlex
from datetime import datetime
from typing import Any

from imagetool.errors import UsageError

_ACTION = re.compile(r"{{(-\s)?(.*?)(\s-)?}}", re.S)


class GoTime(str):
    """An RFC 3339 timestamp that prints like Go's time.Time."""

    def go(self) -> str:
        try:
            t = datetime.fromisoformat(self.replace("Z", "+00:00"))
        except ValueError:
            return str(self)
        frac = f".{t.microsecond:06d}".rstrip("0") if t.microsecond else ""
        off = t.strftime("%z") or "+0000"
        zone = "UTC" if off == "+0000" else t.strftime("%Z") or off
        return t.strftime("%Y-%m-%d %H:%M:%S") + frac + f" {off} {zone}"


def go_str(v: Any) -> str:
    if v is None:
        return "<no value>"
    if isinstance(v, GoTime):
        return v.go()
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{go_str(v[k])}" for k in sorted(v)) + "]"
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(go_str(x) for x in v) + "]"
    return str(v)


def _tokens(expr: str) -> list[str]:
    try:
        return shlex.split(expr, posix=False)
    except ValueError as err:
        raise UsageError(f"invalid template action {{{{{expr}}}}}: {err}") from None


def _field(dot: Any, path: str) -> Any:
    cur = dot
    for name in [p for p in path.split(".") if p]:
        if isinstance(cur, dict):
            cur = cur.get(name)
        else:
            cur = getattr(cur, name, None)
    return cur


def _value(tok: str, dot: Any) -> Any:
    if tok.startswith("."):
        return _field(dot, tok)
    if tok.startswith('"') and tok.endswith('"'):
        return json.loads(tok)
    if tok.isdigit():
        return int(tok)
    raise UsageError(f"unsupported template value {tok!r}")


def _eval(expr: str, dot: Any) -> Any:
    toks = _tokens(expr)
    if not toks:
        raise UsageError("empty template action")
    fn, args = toks[0], [_value(t, dot) for t in toks[1:]]
    if fn == "json":
        return json.dumps(args[0], separators=(",", ":"))
    if fn == "index":
        cur = args[0]
        for key in args[1:]:
            cur = cur.get(key) if isinstance(cur, dict) else cur[key]
        return cur
    if fn == "len":
        return len(args[0] or [])
    if fn in ("println", "print"):
        return " ".join(go_str(a) for a in args) + ("\n" if fn == "println" else "")
    if len(toks) == 1:
        return _value(fn, dot)
    raise UsageError(f"unsupported template function {fn!r}")


def _parse(template: str) -> list[tuple[str, str]]:
    """Split into ("text", s) and ("action", expr) parts, applying trim markers."""
    parts: list[tuple[str, str]] = []
    pos = 0
    for m in _ACTION.finditer(template):
        text = template[pos:m.start()]
        if m.group(1):
            text = text.rstrip()
        if parts and parts[-1][0] == "trim":
            parts.pop()
            text = text.lstrip()
        parts.append(("text", text))
        parts.append(("action", m.group(2).strip()))
        if m.group(3):
            parts.append(("trim", ""))
        pos = m.end()
    tail = template[pos:]
    if parts and parts[-1][0] == "trim":
        parts.pop()
        tail = tail.lstrip()
    parts.append(("text", tail))
    return parts


def _run(parts: list[tuple[str, str]], i: int, dot: Any, out: list[str], stop: tuple[str, ...]) -> tuple[int, str]:
    while i < len(parts):
        kind, s = parts[i]
        i += 1
        if kind == "text":
            out.append(s)
            continue
        word = s.split(None, 1)[0] if s else ""
        if word in stop:
            return i, word
        if word == "range":
            items = _eval(s[len("range"):].strip(), dot) or []
            body_start = i
            if isinstance(items, dict):
                items = [items[k] for k in sorted(items)]
            end = None
            for item in items:
                end, _ = _run(parts, body_start, item, out, ("end",))
            if end is None:
                end, _ = _run(parts, body_start, dot, [], ("end",))
            i = end
        elif word == "if":
            cond = _eval(s[2:].strip(), dot)
            taken: list[str] = []
            j, word2 = _run(parts, i, dot, taken if cond else [], ("else", "end"))
            if word2 == "else":
                other: list[str] = []
                j, _ = _run(parts, j, dot, [] if cond else other, ("end",))
                out.extend(taken if cond else other)
            else:
                out.extend(taken)
            i = j
        else:
            out.append(go_str(_eval(s, dot)))
    if stop:
        raise UsageError(f"template: missing {{{{{stop[-1]}}}}}")
    return i, ""


def render(template: str, data: Any) -> str:
    """Render a Go-style template against `data`; bad templates raise UsageError."""
    out: list[str] = []
    _run(_parse(template), 0, data, out, ())
    return "".join(out)
