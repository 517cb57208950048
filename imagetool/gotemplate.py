"""The subset of Go's text/template that skopeo and buildah users put in --format.

Supported: field chains (`{{.Labels.key}}`, `{{$v.Digest}}`), pipelines (`{{.Os | printf "%q"}}`),
variables (`{{$x := .Os}}`, `{{range $k, $v := .Labels}}`), `range`/`if`/`with` with `else`
and `else if`, `{{-`/`-}}` trimming, and the functions json, index, len, print, printf,
println, eq, ne, lt, le, gt, ge, not, and, or. Values print the way Go prints them
(`map[k:v]`, `[a b]`, time as `2006-01-02 15:04:05 +0000 UTC`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from imagetool.errors import UsageError
from imagetool.govalues import NIL_MAP, GoNil, GoTime, Struct


class TemplateError(UsageError):
    """A template that does not parse or cannot run on the data (exit 1, as skopeo exits)."""

    exit_code = 1

_ACTION = re.compile(r"{{(-\s)?(.*?)(\s-)?}}", re.S)
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|`[^`]*`|:=|[|(),=]|[^\s|(),=]+')
_VERB = re.compile(r"%([-+# 0]*)(\d+)?(?:\.(\d+))?([a-zA-Z%])")


def _go_empty(v: Any) -> bool:
    """What `omitempty` leaves out."""
    return v is None or isinstance(v, GoNil) or (not isinstance(v, Struct) and v in ("", 0, False, [], {}, ()))


def _go_value(v: Any) -> Any:
    """`v` as encoding/json sees it: structs in field order under their JSON names, maps with sorted keys."""
    if isinstance(v, GoNil) or v is None:
        return None
    if isinstance(v, GoTime):
        return v.rfc3339()
    if isinstance(v, Struct):
        out = {}
        for name, value in v.items():
            key, omitempty = v.tags.get(name, (name, False))
            if not (omitempty and _go_empty(value)):
                out[key] = _go_value(value)
        return out
    if isinstance(v, dict):
        return {str(k): _go_value(v[k]) for k in sorted(v, key=str)}
    if isinstance(v, (list, tuple)):
        return [_go_value(x) for x in v]
    return v


def _json(v: Any) -> str:
    from imagetool.gojson import dumps

    return dumps(_go_value(v)).decode("utf-8")


def go_str(v: Any) -> str:
    if v is None:
        return "<no value>"
    if isinstance(v, GoNil):
        return v.text
    if isinstance(v, GoTime):
        return v.go()
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Struct):
        return "{" + " ".join(go_str(x) for x in v.values()) + "}"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{go_str(v[k])}" for k in sorted(v)) + "]"
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(go_str(x) for x in v) + "]"
    return str(v)


# -- functions


def _printf(fmt: str, *args: Any) -> str:
    """Go's fmt verbs for the values templates see (%s %v %d %q %x %t %f %%)."""
    queue = list(args)

    def one(m: re.Match[str]) -> str:
        flags, width, prec, verb = m.groups()
        if verb == "%":
            return "%"
        if not queue:
            return f"%!{verb}(MISSING)"
        v = queue.pop(0)
        if verb in "sv":
            text = go_str(v)
        elif verb == "q":
            text = json.dumps(go_str(v) if not isinstance(v, str) else v, ensure_ascii=False)
        elif verb == "d" and isinstance(v, int):
            text = str(v)
        elif verb in "xX" and isinstance(v, (int, str)):
            text = format(v, verb) if isinstance(v, int) else v.encode().hex()
            text = text.upper() if verb == "X" else text
        elif verb == "t" and isinstance(v, bool):
            text = go_str(v)
        elif verb in "fFeg" and isinstance(v, (int, float)):
            text = format(v, f".{prec or 6}{verb.lower()}")
        else:
            return f"%!{verb}({type(v).__name__}={go_str(v)})"
        if width:
            text = text.ljust(int(width)) if "-" in flags else text.rjust(int(width), "0" if "0" in flags else " ")
        return text

    return _VERB.sub(one, fmt)


def _index(item: Any, *keys: Any) -> Any:
    for key in keys:
        if item is NIL_MAP:
            item = ""
        elif isinstance(item, dict):
            item = item.get(key, "")  # Go's index gives the element type's zero value
        elif isinstance(item, (list, tuple, str)) and isinstance(key, int):
            if not 0 <= key < len(item):
                raise TemplateError(f"template: index out of range: {key}")
            item = item[key]
        else:
            raise TemplateError(f"template: cannot index {go_str(item)} with {go_str(key)}")
    return item


def _compare(op: Callable[[Any, Any], bool]) -> Callable[..., bool]:
    def fn(a: Any, b: Any) -> bool:
        try:
            return op(a, b)
        except TypeError as err:
            raise TemplateError(f"template: incompatible types for comparison: {go_str(a)}, {go_str(b)}") from err
    return fn


def _and(*args: Any) -> Any:
    for a in args:
        if not a:
            return a
    return args[-1]


def _or(*args: Any) -> Any:
    for a in args:
        if a:
            return a
    return args[-1]


FUNCS: dict[str, Callable[..., Any]] = {
    "json": _json,
    "index": _index,
    "len": lambda v: len(v or []),
    "print": lambda *a: "".join(go_str(x) for x in a),
    "println": lambda *a: " ".join(go_str(x) for x in a) + "\n",
    "printf": _printf,
    "eq": lambda a, *rest: any(a == b for b in rest),
    "ne": _compare(lambda a, b: a != b),
    "lt": _compare(lambda a, b: a < b),
    "le": _compare(lambda a, b: a <= b),
    "gt": _compare(lambda a, b: a > b),
    "ge": _compare(lambda a, b: a >= b),
    "not": lambda a: not a,
    "and": _and,
    "or": _or,
}


# -- expressions: pipelines of commands over operands


def _tokens(expr: str) -> list[str]:
    toks = _TOKEN.findall(expr)
    if not toks:
        raise TemplateError("empty template action")
    return toks


def _field(cur: Any, path: str) -> Any:
    for name in [p for p in path.split(".") if p]:
        if isinstance(cur, Struct) and name not in cur:
            raise TemplateError(f"template: can't evaluate field {name}")
        if isinstance(cur, dict):
            cur = cur.get(name)
        else:
            cur = getattr(cur, name, None)
    return cur


class _Scope:
    def __init__(self, dot: Any, variables: dict[str, Any]) -> None:
        self.dot = dot
        self.vars = variables

    def operand(self, tok: str) -> Any:
        if tok == ".":
            return self.dot
        if tok.startswith("."):
            return _field(self.dot, tok)
        if tok.startswith("$"):
            name, _, path = tok.partition(".")
            if name not in self.vars:
                raise TemplateError(f"template: undefined variable {name!r}")
            return _field(self.vars[name], path)
        if tok.startswith('"'):
            return json.loads(tok)
        if tok.startswith("`"):
            return tok[1:-1]
        if tok in ("true", "false"):
            return tok == "true"
        if tok == "nil":
            return None
        if re.fullmatch(r"-?\d+", tok):
            return int(tok)
        if re.fullmatch(r"-?\d+\.\d*", tok):
            return float(tok)
        raise TemplateError(f"unsupported template value {tok!r}")

    def pipeline(self, toks: list[str]) -> Any:
        commands: list[list[str]] = [[]]
        depth = 0
        for tok in toks:
            depth += tok == "("
            depth -= tok == ")"
            if tok == "|" and depth == 0:
                commands.append([])
            else:
                commands[-1].append(tok)
        value: Any = None
        for i, cmd in enumerate(commands):
            value = self.command(cmd, [value] if i else [])
        return value

    def command(self, toks: list[str], piped: list[Any]) -> Any:
        if not toks:
            raise TemplateError("template: empty command")
        if toks[0].isidentifier() and toks[0] not in FUNCS and toks[0] not in ("true", "false", "nil"):
            raise TemplateError(f"unsupported template function {toks[0]!r}")
        args: list[Any] = []
        i = 1 if toks[0] in FUNCS else 0
        while i < len(toks):
            if toks[i] == "(":
                depth, j = 1, i + 1
                while j < len(toks) and depth:
                    depth += (toks[j] == "(") - (toks[j] == ")")
                    j += 1
                if depth:
                    raise TemplateError("template: unclosed '('")
                args.append(self.pipeline(toks[i + 1:j - 1]))
                i = j
            else:
                args.append(self.operand(toks[i]))
                i += 1
        args += piped
        if toks[0] in FUNCS:
            try:
                return FUNCS[toks[0]](*args)
            except TypeError as err:
                raise TemplateError(f"template: wrong number of arguments for {toks[0]}") from err
        if len(args) != 1:
            raise TemplateError(f"template: {toks[0]!r} is not a function and takes no arguments")
        return args[0]


# -- the template tree


@dataclass
class _Node:
    kind: str                                   # text, action, range, if, with
    text: str = ""
    names: list[str] = field(default_factory=list)
    body: list[_Node] = field(default_factory=list)
    other: list[_Node] = field(default_factory=list)


def _split(template: str) -> list[tuple[str, str]]:
    """("text", s) and ("action", expr) parts, trim markers applied."""
    parts: list[tuple[str, str]] = []
    pos = 0
    trim_next = False
    for m in _ACTION.finditer(template):
        text = template[pos:m.start()]
        if trim_next:
            text = text.lstrip()
        if m.group(1):
            text = text.rstrip()
        parts.append(("text", text))
        parts.append(("action", m.group(2).strip()))
        trim_next = bool(m.group(3))
        pos = m.end()
    tail = template[pos:]
    parts.append(("text", tail.lstrip() if trim_next else tail))
    for kind, text in parts:
        if kind == "text" and "{{" in text:
            raise TemplateError(f"template: unclosed action in {text[text.index('{{'):][:40]!r}")
    return parts


def _declaration(expr: str) -> tuple[list[str], str]:
    """`$k, $v := pipeline` -> (["$k", "$v"], "pipeline"); no declaration -> ([], expr)."""
    m = re.match(r"^(\$\w*)(?:\s*,\s*(\$\w*))?\s*:=\s*(.*)$", expr, re.S)
    if not m:
        return [], expr
    return [n for n in m.groups()[:2] if n], m.group(3)


class _Parser:
    def __init__(self, parts: list[tuple[str, str]]) -> None:
        self.parts = parts
        self.i = 0

    def nodes(self, stop: tuple[str, ...]) -> tuple[list[_Node], str, str]:
        out: list[_Node] = []
        while self.i < len(self.parts):
            kind, s = self.parts[self.i]
            self.i += 1
            if kind == "text":
                if s:
                    out.append(_Node("text", s))
                continue
            word, _, rest = s.partition(" ")
            rest = rest.strip()
            if word in stop:
                return out, word, rest
            if word in ("end", "else"):
                raise TemplateError(f"template: unexpected {{{{{word}}}}}")
            if word in ("range", "if", "with"):
                out.append(self.block(word, rest))
            elif word.startswith("/*"):
                continue
            else:
                out.append(_Node("action", s))
        if stop:
            raise TemplateError("template: missing {{end}}")
        return out, "", ""

    def block(self, kind: str, expr: str) -> _Node:
        names, expr = _declaration(expr) if kind != "if" else ([], expr)
        node = _Node(kind, expr, names)
        node.body, word, rest = self.nodes(("else", "end"))
        if word == "else":
            inner, _, inner_expr = rest.partition(" ")
            if inner in ("if", "with") and kind != "range":
                node.other = [self.block(inner, inner_expr.strip())]  # `else if` shares the outer {{end}}
            else:
                node.other, _, _ = self.nodes(("end",))
        return node


def _exec(nodes: list[_Node], scope: _Scope, out: list[str]) -> None:
    for node in nodes:
        if node.kind == "text":
            out.append(node.text)
        elif node.kind == "action":
            names, expr = _declaration(node.text)
            value = scope.pipeline(_tokens(expr))
            if names:
                scope.vars[names[0]] = value
            else:
                out.append(go_str(value))
        elif node.kind == "if":
            _exec(node.body if scope.pipeline(_tokens(node.text)) else node.other, scope, out)
        elif node.kind == "with":
            value = scope.pipeline(_tokens(node.text))
            if value:
                inner = _Scope(value, dict(scope.vars))
                if node.names:
                    inner.vars[node.names[0]] = value
                _exec(node.body, inner, out)
            else:
                _exec(node.other, scope, out)
        else:
            _range(node, scope, out)


def _range(node: _Node, scope: _Scope, out: list[str]) -> None:
    items = scope.pipeline(_tokens(node.text))
    if isinstance(items, dict):
        pairs = [(k, items[k]) for k in sorted(items)]
    elif isinstance(items, (list, tuple)):
        pairs = list(enumerate(items))
    elif items is None or isinstance(items, GoNil):
        pairs = []
    elif isinstance(items, int):
        pairs = [(i, i) for i in range(items)]
    else:
        raise TemplateError(f"template: range can't iterate over {go_str(items)}")
    if not pairs:
        _exec(node.other, scope, out)
    for key, value in pairs:
        inner = _Scope(value, dict(scope.vars))
        if len(node.names) == 2:
            inner.vars[node.names[0]], inner.vars[node.names[1]] = key, value
        elif node.names:
            inner.vars[node.names[0]] = value
        _exec(node.body, inner, out)


def render(template: str, data: Any) -> str:
    """Render a Go-style template against `data`; bad templates raise UsageError."""
    nodes, _, _ = _Parser(_split(template)).nodes(())
    out: list[str] = []
    _exec(nodes, _Scope(data, {"$": data}), out)
    return "".join(out)
