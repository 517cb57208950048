"""One Dockerfile instruction's arguments -> a typed instruction (flags, JSON forms, name=value pairs).

Errors raised here are DockerfileError with the instruction's line. Values Docker
expands later (ENV values, COPY paths, flag values) are kept as written.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable

from imagetool import goduration
from imagetool.build import instructions as ins
from imagetool.build.expand import ExpansionError, split_words, unquote
from imagetool.errors import DockerfileError

#: flag name -> kind ("str", "bool", "list") for each instruction that takes flags
FLAGS: dict[str, dict[str, str]] = {
    "FROM": {"platform": "str"},
    "RUN": {"mount": "list", "network": "str", "security": "str"},
    "COPY": {"from": "str", "chown": "str", "chmod": "str", "link": "bool", "exclude": "list"},
    "ADD": {"chown": "str", "chmod": "str", "link": "bool", "checksum": "str", "keep-git-dir": "bool",
            "exclude": "list"},
    "HEALTHCHECK": {"interval": "str", "timeout": "str", "start-period": "str", "start-interval": "str",
                    "retries": "str"},
}
MOUNT_TYPES = ("bind", "cache", "secret", "tmpfs")
#: buildah's volume flags on --mount: z/Z SELinux labels, U chown to the RUN user, O overlay (writes thrown away)
VOLUME_FLAGS = ("z", "Z", "U", "O")
NETWORKS = ("default", "none", "host")
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9_.-]*$")
#: `<<EOF`, `<<-EOF`, `<<"EOF"`, and with a file descriptor in front (`5<<EOF`), as BuildKit reads them
_HEREDOC = re.compile(r"^\d*<<(-?)(?:'([^']+)'|\"([^\"]+)\"|([^\s<>|;&'\"]+))$")


class Ctx:
    """What argument parsers need to know about the instruction being parsed."""

    def __init__(self, keyword: str, line: int, original: str, escape: str,
                 heredocs: tuple[ins.Heredoc, ...] = ()) -> None:
        self.keyword = keyword
        self.line = line
        self.original = original
        self.escape = escape
        self.heredocs = heredocs

    def error(self, reason: str) -> DockerfileError:
        return DockerfileError(reason, self.line)


def heredoc_marker(word: str) -> tuple[str, bool, bool] | None:
    """`<<EOF`, `<<-EOF`, `<<"EOF"`, `5<<EOF` -> (name, expand, chomp); None when the word is no heredoc."""
    m = _HEREDOC.match(word)
    if not m:
        return None
    name = m.group(2) or m.group(3) or m.group(4)
    return name, m.group(4) is not None, m.group(1) == "-"


def split_flags(ctx: Ctx, text: str) -> tuple[dict[str, object], str]:
    """Leading `--name[=value]` words -> checked flag values, and the rest of the line untouched."""
    spec = FLAGS.get(ctx.keyword, {})
    flags: dict[str, object] = {}
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if not text.startswith("--", pos):
            break
        end = pos
        quote = ""
        while end < len(text) and (quote or not text[end].isspace()):
            ch = text[end]
            if quote and ch == quote:
                quote = ""
            elif not quote and ch in "'\"":
                quote = ch
            elif ch == ctx.escape:
                end += 1
            end += 1
        word, pos = text[pos:end], end
        if word == "--":
            break
        try:
            name, has_value, value = unquote(word[2:], ctx.escape).partition("=")
        except ExpansionError as err:
            raise ctx.error(str(err)) from err
        kind = spec.get(name)
        if kind is None:
            raise ctx.error(f"unknown flag --{name} for {ctx.keyword}")
        if kind == "bool":
            if has_value and value.lower() not in ("true", "false"):
                raise ctx.error(f"--{name} expects true or false, not {value!r}")
            flags[name] = not has_value or value.lower() == "true"
            continue
        if not has_value:
            raise ctx.error(f"missing a value on flag --{name}")
        if kind == "list":
            flags.setdefault(name, [])
            flags[name].append(value)  # type: ignore[attr-defined]
        elif name in flags:
            raise ctx.error(f"duplicate flag specified: --{name}")
        else:
            flags[name] = value
    return flags, text[pos:].strip()


def json_list(text: str) -> list[str] | None:
    """The exec (JSON array of strings) form, or None when `text` is not one (then it is shell form)."""
    text = text.strip()
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def command(ctx: Ctx, text: str) -> ins.Command:
    argv = json_list(text)
    if argv is not None:
        return ins.Command(argv=tuple(argv))
    if not text.strip():
        raise ctx.error(f"{ctx.keyword} requires at least one argument")
    return ins.Command(shell=text)


def name_values(ctx: Ctx, text: str, legacy: bool) -> tuple[tuple[str, str], ...]:
    """ENV/LABEL pairs: `k=v k2="v 2"`, or the legacy `KEY value with spaces` form."""
    try:
        words = split_words(text, ctx.escape)
    except ExpansionError as err:
        raise ctx.error(str(err)) from err
    if not words:
        raise ctx.error(f"{ctx.keyword} requires at least one argument")
    if "=" not in words[0]:
        if not legacy:
            raise ctx.error(f"{ctx.keyword} names must be followed by =value")
        parts = text.strip().split(None, 1)
        if len(parts) < 2:
            raise ctx.error(f"{ctx.keyword} {parts[0]} requires a value: use {parts[0]}=VALUE")
        key, value = parts
        return ((key, value),)
    pairs = []
    for word in words:
        key, eq, value = word.partition("=")
        if not eq:
            raise ctx.error(f"syntax error: can't find = in {word!r}; must be of the form name=value")
        if not key:
            raise ctx.error(f"{ctx.keyword} names can not be blank")
        pairs.append((key, value))
    return tuple(pairs)


def duration(ctx: Ctx, flag: str, text: str | None) -> int:
    """A Go duration ("30s", "1m30s", "500ms") in nanoseconds, without a sign; absent means 0 (the default)."""
    if text is None:
        return 0
    try:
        total = goduration.nanoseconds(text, signed=False)
    except ValueError as err:
        raise ctx.error(f"invalid duration for --{flag}: {text!r}") from err
    if 0 < total < 1_000_000:
        raise ctx.error(f"--{flag} cannot be less than 1ms")
    return total


def mount(ctx: Ctx, text: str) -> ins.Mount:
    try:
        fields = next(csv.reader([text]))
    except (csv.Error, StopIteration) as err:
        raise ctx.error(f"invalid --mount {text!r}") from err
    options: list[tuple[str, str]] = []
    mtype = "bind"
    for item in fields:
        if item.strip() in VOLUME_FLAGS:
            options.append((item.strip(), "true"))
            continue
        if item.strip() in ("tmpcopyup", "notmpcopyup"):  # buildah's: a tmpfs starts as the image's directory
            options.append(("tmpcopyup", "true" if item.strip() == "tmpcopyup" else "false"))
            continue
        key, _, value = item.strip().partition("=")
        key = key.lower()
        if key == "type":
            mtype = value
        elif key in ("target", "dst", "destination"):
            options.append(("target", value))
        elif key in ("source", "src"):
            options.append(("source", value))
        elif key in ("readonly", "ro", "readwrite", "rw", "required"):
            options.append((key, value or "true"))
        elif key in ("from", "id", "sharing", "mode", "uid", "gid", "size", "env"):
            options.append((key, value))
        else:
            raise ctx.error(f"unexpected key {key!r} in --mount {text!r}")
    if mtype not in MOUNT_TYPES:
        raise ctx.error(f"unsupported mount type {mtype!r} (use {', '.join(MOUNT_TYPES)})")
    m = ins.Mount(mtype, tuple(options))
    if mtype != "secret" and not m.get("target"):
        raise ctx.error(f"--mount=type={mtype} needs a target")
    if mtype == "secret" and not (m.get("id") or m.get("target")):
        raise ctx.error("--mount=type=secret needs an id or a target")
    sharing = m.get("sharing")
    if sharing is not None and sharing not in ("shared", "private", "locked"):
        raise ctx.error(f"invalid sharing {sharing!r} in --mount (shared, private or locked)")
    return m


# -- one parser per instruction: (ctx, flags, rest) -> instruction


def _from(ctx: Ctx, flags: dict[str, object], rest: str) -> ins.From:
    words = rest.split()
    if len(words) == 1:
        return ins.From(ctx.line, ctx.original, image=words[0], platform=flags.get("platform"))  # type: ignore
    if len(words) != 3 or words[1].lower() != "as":
        raise ctx.error("FROM requires either one argument, or three: FROM <image> AS <name>")
    name = words[2].lower()
    if not _STAGE_NAME.match(name):
        raise ctx.error(f"invalid name for build stage: {words[2]!r}, name can't start with a number "
                        f"or contain symbols")
    return ins.From(ctx.line, ctx.original, image=words[0], name=name,
                    platform=flags.get("platform"))  # type: ignore[arg-type]


def _run(ctx: Ctx, flags: dict[str, object], rest: str) -> ins.Run:
    network = flags.get("network")
    if isinstance(network, str) and network not in NETWORKS and "$" not in network:
        raise ctx.error(f"invalid --network {network!r} (use {', '.join(NETWORKS)})")
    security = flags.get("security")
    if security is not None and security not in ("sandbox", "insecure"):
        raise ctx.error(f"invalid --security {security!r} (use sandbox or insecure)")
    mounts = tuple(mount(ctx, m) for m in flags.get("mount", []))  # type: ignore[attr-defined]
    return ins.Run(ctx.line, ctx.original, command=command(ctx, rest), heredocs=ctx.heredocs,
                   network=network, security=security, mounts=mounts)  # type: ignore[arg-type]


def _copy(ctx: Ctx, flags: dict[str, object], rest: str) -> ins.Copy:
    items = json_list(rest)
    if items is None:
        items = rest.split()
    heredoc_names = {h.name for h in ctx.heredocs}
    sources = [s for s in items[:-1] if (heredoc_marker(s) or ("",))[0] not in heredoc_names]
    if len(items) < 2:
        raise ctx.error(f"{ctx.keyword} requires at least two arguments, but only {len(items)} "
                        f"{'was' if len(items) == 1 else 'were'} provided; the destination could not "
                        f"be determined")
    common = {"sources": tuple(sources), "dest": items[-1], "chown": flags.get("chown"),
              "chmod": flags.get("chmod"), "link": bool(flags.get("link", False)), "heredocs": ctx.heredocs,
              "excludes": tuple(flags.get("exclude", []))}  # type: ignore[call-overload, arg-type]
    chmod = flags.get("chmod")
    if isinstance(chmod, str) and "$" not in chmod and not re.fullmatch(r"[0-7]{3,4}", chmod):
        raise ctx.error(f"invalid --chmod {chmod!r}: expected an octal mode such as 0755")
    if ctx.keyword == "ADD":
        if flags.get("keep-git-dir"):  # ADD fetches http(s) URLs as files; it never clones a repository
            raise ctx.error("--keep-git-dir: ADD of a git repository is not supported")
        return ins.Add(ctx.line, ctx.original, checksum=flags.get("checksum"), **common)  # type: ignore[arg-type]
    return ins.Copy(ctx.line, ctx.original, from_=flags.get("from"), **common)  # type: ignore[arg-type]


def _arg(ctx: Ctx, flags: dict[str, object], rest: str) -> ins.Arg:
    try:
        words = split_words(rest, ctx.escape)
    except ExpansionError as err:
        raise ctx.error(str(err)) from err
    if not words:
        raise ctx.error("ARG requires at least one argument")
    pairs = []
    for word in words:
        name, eq, value = word.partition("=")
        if not name:
            raise ctx.error("ARG names can not be blank")
        pairs.append((name, value if eq else None))
    return ins.Arg(ctx.line, ctx.original, pairs=tuple(pairs))


def _one(ctx: Ctx, rest: str) -> str:
    if not rest.strip():
        raise ctx.error(f"{ctx.keyword} requires exactly one argument")
    return rest.strip()


def _list(ctx: Ctx, rest: str) -> tuple[str, ...]:
    items = json_list(rest)
    items = items if items is not None else rest.split()
    if not items:
        raise ctx.error(f"{ctx.keyword} requires at least one argument")
    if any(not i.strip() for i in items):
        raise ctx.error(f"{ctx.keyword} specified can not be an empty string")
    return tuple(items)


def _healthcheck(ctx: Ctx, flags: dict[str, object], rest: str) -> ins.Healthcheck:
    kind, _, args = rest.strip().partition(" ")
    kind = kind.upper()
    if kind == "NONE":
        if args.strip() or flags:
            raise ctx.error("HEALTHCHECK NONE takes no arguments or flags")
        return ins.Healthcheck(ctx.line, ctx.original, test=("NONE",))
    if kind != "CMD":
        raise ctx.error(f"unknown type {kind!r} in HEALTHCHECK (try CMD)")
    cmd = command(ctx, args)
    test = ("CMD", *cmd.argv) if cmd.argv is not None else ("CMD-SHELL", cmd.shell or "")
    retries_text = flags.get("retries")
    try:
        retries = int(str(retries_text)) if retries_text is not None else 0
    except ValueError as err:
        raise ctx.error(f"invalid --retries {retries_text!r}") from err
    if retries < 0:
        raise ctx.error("--retries cannot be negative")
    g = flags.get
    return ins.Healthcheck(ctx.line, ctx.original, test=test, retries=retries,
                           interval=duration(ctx, "interval", g("interval")),  # type: ignore[arg-type]
                           timeout=duration(ctx, "timeout", g("timeout")),  # type: ignore[arg-type]
                           start_period=duration(ctx, "start-period", g("start-period")),  # type: ignore
                           start_interval=duration(ctx, "start-interval", g("start-interval")))  # type: ignore


def _shell(ctx: Ctx, flags: dict[str, object], rest: str) -> ins.Shell:
    argv = json_list(rest)
    if not argv:
        raise ctx.error("SHELL requires the arguments to be in JSON form, e.g. SHELL [\"/bin/sh\", \"-c\"]")
    return ins.Shell(ctx.line, ctx.original, argv=tuple(argv))


Parser = Callable[[Ctx, "dict[str, object]", str], ins.AnyInstruction]

PARSERS: dict[str, Parser] = {
    "FROM": _from,
    "RUN": _run,
    "COPY": _copy,
    "ADD": _copy,
    "ARG": _arg,
    "HEALTHCHECK": _healthcheck,
    "SHELL": _shell,
    "ENV": lambda c, f, r: ins.Env(c.line, c.original, pairs=name_values(c, r, legacy=True)),
    "LABEL": lambda c, f, r: ins.Label(c.line, c.original, pairs=name_values(c, r, legacy=True)),
    "WORKDIR": lambda c, f, r: ins.Workdir(c.line, c.original, path=_one(c, r)),
    "USER": lambda c, f, r: ins.User(c.line, c.original, user=_one(c, r)),
    "STOPSIGNAL": lambda c, f, r: ins.Stopsignal(c.line, c.original, signal=_one(c, r)),
    "MAINTAINER": lambda c, f, r: ins.Maintainer(c.line, c.original, author=_one(c, r)),
    "EXPOSE": lambda c, f, r: ins.Expose(c.line, c.original, ports=_list(c, r)),
    "VOLUME": lambda c, f, r: ins.Volume(c.line, c.original, paths=_list(c, r)),
    "CMD": lambda c, f, r: ins.Cmd(c.line, c.original, command=command(c, r)),
    "ENTRYPOINT": lambda c, f, r: ins.Entrypoint(c.line, c.original, command=command(c, r)),
}
KEYWORDS = frozenset(PARSERS) | {"ONBUILD"}
NOT_TRIGGERS = ("ONBUILD", "FROM", "MAINTAINER")


def parse_instruction(keyword: str, rest: str, line: int, original: str, escape: str = "\\",
                      heredocs: tuple[ins.Heredoc, ...] = ()) -> ins.AnyInstruction:
    """Parse one instruction's arguments (continuations already joined)."""
    keyword = keyword.upper()
    ctx = Ctx(keyword, line, original, escape, heredocs)
    if keyword == "ONBUILD":
        inner_kw, _, inner_rest = rest.strip().partition(" ")
        inner_kw = inner_kw.upper()
        if not inner_kw:
            raise ctx.error("ONBUILD requires at least one argument")
        if inner_kw in NOT_TRIGGERS:
            raise ctx.error(f"{inner_kw} isn't allowed as an ONBUILD trigger")
        trigger = parse_instruction(inner_kw, inner_rest, line, rest.strip(), escape, heredocs)
        return ins.Onbuild(line, original, trigger=trigger, expression=rest.strip())
    parser = PARSERS.get(keyword)
    if parser is None:
        raise ctx.error(f"unknown instruction: {keyword}")
    flags, rest = split_flags(ctx, rest)
    return parser(ctx, flags, rest)
