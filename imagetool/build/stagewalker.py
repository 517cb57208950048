"""A stage walked step by step: what each instruction asks of the executor, and its cache key.

The walker owns the config and ARG/ENV state of a stage. Config-only instructions it
applies itself; for RUN and COPY/ADD it hands out a fully expanded work item (argv, env,
mounts, destination, resolved sources) together with the step's cache key, so the
executor only has to run, copy, diff and commit. ONBUILD triggers of the base image run
first, as Docker runs them right after FROM.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from imagetool.build import instructions as ins
from imagetool.build.cache import step_key
from imagetool.build.config import DEFAULT_PATH, ConfigState, apply
from imagetool.build.context import BuildContext, NamedContexts
from imagetool.build.dockerfile import parse_line
from imagetool.build.expand import ExpansionError, expand_heredoc
from imagetool.build.stages import BuildPlan, Scope, Stage, find_stage
from imagetool.errors import BuildError, DockerfileError, ImagetoolError

HEREDOC_SCRIPT_DIR = "/dev/pipes"


@dataclass(frozen=True)
class MountSpec:
    """A RUN --mount with its options expanded; `from_stage` / `from_image` set for bind/cache from=."""

    type: str
    target: str
    source: str = ""
    from_stage: int | None = None
    from_image: str | None = None
    readonly: bool = False
    id: str = ""
    sharing: str = "shared"
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    required: bool = False
    size: int | None = None
    from_context: str | None = None       # a --build-context directory
    chown: bool = False                   # U: the content shows owned by the RUN step's user
    overlay: bool = False                 # O: writable, the writes thrown away after the step
    relabel: bool = False                 # z or Z: an SELinux label asked for
    copyup: bool = False                  # tmpcopyup: a tmpfs starts as the image's directory at its target


@dataclass(frozen=True)
class RunWork:
    argv: tuple[str, ...]
    env: tuple[str, ...]
    workdir: str
    user: str
    network: str = "default"
    mounts: tuple[MountSpec, ...] = ()
    #: (path inside the container, content, mode): a heredoc script with a shebang is run from a file
    files: tuple[tuple[str, str, int], ...] = ()


@dataclass(frozen=True)
class CopyWork:
    """COPY/ADD: sources come from the context, an earlier stage, or an image (absolute paths in it)."""

    sources: tuple[str, ...]
    dest: str                             # absolute; a trailing / means "into this directory"
    from_stage: int | None = None
    from_image: str | None = None
    chown: str | None = None
    chmod: int | None = None
    #: (file name, content) written by COPY <<NAME
    files: tuple[tuple[str, str], ...] = ()
    add: bool = False                     # ADD: local tar archives are extracted, URLs fetched
    urls: tuple[str, ...] = ()
    checksum: str | None = None
    link: bool = False
    from_context: str | None = None       # a --build-context directory instead of the main context
    #: --exclude: sources and files under them these patterns match are left out
    excludes: tuple[str, ...] = ()

    @property
    def dest_is_dir(self) -> bool:
        return self.dest.endswith("/") or len(self.sources) + len(self.files) + len(self.urls) > 1


@dataclass(frozen=True)
class WorkdirWork:
    """WORKDIR makes its directory (0755, owned by the USER of the moment, symlinks followed inside
    the root), as Docker documents and BuildKit does; a layer only when something was made."""

    path: str
    user: str = ""


@dataclass(frozen=True)
class Step:
    stage: int
    number: int                           # 1-based within the stage, FROM being 1 (buildah's STEP n/N)
    total: int
    instruction: ins.AnyInstruction
    key: str
    work: RunWork | CopyWork | WorkdirWork | None = None
    #: created_by for the history entry (empty_layer when work is None)
    created_by: str = ""

    @property
    def label(self) -> str:
        return f"STEP {self.number}/{self.total}: {self.instruction.original}"


@dataclass
class StageResult:
    """Where a finished stage left its state, for FROM <stage> and COPY --from=<stage>."""

    key: str
    state: ConfigState
    extra: dict[str, Any] = field(default_factory=dict)


class StageWalker:
    """Yields a stage's steps; `base_config` is the base image's config document (None for scratch)."""

    def __init__(self, plan: BuildPlan, stage: Stage, context: BuildContext | None, base_key: str,
                 base_config: dict[str, Any] | None, results: dict[int, StageResult] | None = None,
                 escape: str = "\\", named: NamedContexts | None = None) -> None:
        self.plan = plan
        self.stage = stage
        self.context = context
        self.named = named or NamedContexts()
        self.results = results or {}
        if stage.base_stage is not None:
            parent = self.results[stage.base_stage].state
            self.state = ConfigState(_copy_json(parent.config), parent.author, parent.shell,
                                     shell_set=parent.shell_set)
        else:
            self.state = ConfigState.from_image(base_config)
            if "PATH" not in self.state.env():  # BuildKit sees to it that PATH is always set
                self.state.set_env("PATH", DEFAULT_PATH)
        triggers = list(self.state.config.pop("OnBuild", None) or [])
        self.onbuild = tuple(_trigger(t, stage.from_.line) for t in triggers)
        self.scope = Scope(plan.global_args, plan.build_args, self.state.env(), escape)
        self.key = base_key

    @property
    def total(self) -> int:
        return len(self.stage.instructions) + len(self.onbuild) + 1

    def __iter__(self) -> Iterator[Step]:
        number = 1
        for i in (*self.onbuild, *self.stage.instructions):
            number += 1
            yield self._step(number, i)

    def result(self) -> StageResult:
        return StageResult(self.key, self.state)

    # -- one instruction

    def _step(self, number: int, i: ins.AnyInstruction) -> Step:
        try:
            return self._evaluate(number, i)
        except DockerfileError as err:
            if err.file != self.plan.dockerfile:
                raise DockerfileError(err.reason, err.line or i.line, self.plan.dockerfile) from err
            raise
        except ImagetoolError as err:
            raise at_line(self.plan.dockerfile, i) from err

    def _evaluate(self, number: int, i: ins.AnyInstruction) -> Step:
        work: RunWork | CopyWork | WorkdirWork | None = None
        inputs: dict[str, Any] = {}
        if isinstance(i, ins.Run):
            work = self._run(i)
            inputs = {"argv": work.argv, "env": work.env, "workdir": work.workdir, "user": work.user,
                      "network": work.network, "mounts": [m.__dict__ for m in work.mounts], "files": work.files,
                      "bound": [self._bound_key(m) for m in work.mounts if m.type == "bind"]}
            created_by = self._args_prefix() + (" ".join(work.argv) if i.command.is_exec else
                                                 " ".join([*self.state.shell, i.command.shell or ""]))
        elif isinstance(i, ins.Copy):
            work = self._copy(i)
            inputs = {"work": dict(work.__dict__), **self._copy_source_key(work)}
            created_by = f"/bin/sh -c #(nop) {i.keyword} {' '.join(work.sources)} in {work.dest}"
        else:
            before = (_copy_json(self.state.config), self.state.author, self.state.shell)
            apply(self.state, i, self.scope)
            after = (self.state.config, self.state.author, self.state.shell)
            if isinstance(i, ins.Workdir) and (self.state.config.get("WorkingDir") or "/") != "/":
                work = WorkdirWork(self.state.config["WorkingDir"], self.state.config.get("User") or "")
                inputs["mkdir"] = dict(work.__dict__)
            inputs = {**inputs, "result": after if after != before else None, "args": dict(self.scope.args)}
            created_by = f"/bin/sh -c #(nop) {i.original}"
        self.key = step_key(self.key, i.original, inputs)
        return Step(self.stage.index, number, self.total, i, self.key, work, created_by)

    def _args_prefix(self) -> str:
        """Docker's `|N K=V ... ` before a RUN's history entry: the declared ARGs ENV does not override."""
        args = sorted(f"{k}={v}" for k, v in self.scope.args.items() if k not in self.scope.env)
        return f"|{len(args)} {' '.join(args)} " if args else ""

    def _run(self, i: ins.Run) -> RunWork:
        files: tuple[tuple[str, str, int], ...] = ()
        if i.command.argv is not None:
            argv: tuple[str, ...] = i.command.argv
        elif i.heredocs:
            argv, files = self._heredoc_run(i)
        else:
            argv = (*self.state.shell, i.command.shell or "")
        network = self.scope.expand(i.network, i.line) if i.network else "default"
        if network not in ("default", "none", "host"):
            raise DockerfileError(f"invalid --network {network!r}", i.line)
        cfg = self.state.config
        return RunWork(argv, tuple(self.scope.run_env()), cfg.get("WorkingDir") or "/", cfg.get("User") or "",
                       network, tuple(self._mount(m, i.line) for m in i.mounts), files)

    def _heredoc_run(self, i: ins.Run) -> tuple[tuple[str, ...], tuple[tuple[str, str, int], ...]]:
        command = (i.command.shell or "").strip()
        first = i.heredocs[0]
        if len(i.heredocs) == 1 and command.lstrip("<-").strip("'\"") == first.name:
            if first.content.startswith("#!"):
                path = f"{HEREDOC_SCRIPT_DIR}/{first.name}"
                return (path,), ((path, first.content, 0o755),)
            return (*self.state.shell, first.content), ()
        script = command
        for doc in i.heredocs:
            script += "\n" + doc.content + doc.name
        return (*self.state.shell, script), ()

    def _mount(self, m: ins.Mount, line: int) -> MountSpec:
        opts = {k: self.scope.expand(v, line) for k, v in m.options}
        target = opts.get("target", "")
        if m.type == "secret" and not target:
            target = f"/run/secrets/{opts['id']}"
        if target and not target.startswith("/"):
            target = posixpath.join(self.state.config.get("WorkingDir") or "/", target)
        from_stage, from_image, from_context = self._source(opts.get("from"))

        def number(key: str, base: int = 10) -> int | None:
            try:
                return int(opts[key], base) if opts.get(key) else None
            except ValueError as err:
                raise DockerfileError(f"--mount {key}={opts[key]!r} is not a number", line) from err

        readonly = m.type == "bind" and "rw" not in opts and "readwrite" not in opts and "O" not in opts
        readonly = readonly or opts.get("ro", opts.get("readonly", "false")) == "true"
        return MountSpec(m.type, target, opts.get("source", ""), from_stage, from_image, readonly,
                         opts.get("id") or (target if m.type == "cache" else ""), opts.get("sharing", "shared"),
                         number("mode", 8), number("uid"), number("gid"), opts.get("required") == "true",
                         _size(opts.get("size"), line), from_context, "U" in opts, "O" in opts,
                         "z" in opts or "Z" in opts, m.type == "tmpfs" and opts.get("tmpcopyup") == "true")

    def _source(self, ref: str | None) -> tuple[int | None, str | None, str | None]:
        """(stage, image, named directory) that a --from names: a stage first, then --build-context names."""
        if not ref:
            return None, None, None
        found = find_stage(self.plan.stages, ref, self.stage.index)
        if found is not None:
            return found, None, None
        if ref in self.named.dirs:
            return None, None, ref
        return None, self.named.images.get(ref, ref), None

    def _copy(self, i: ins.Copy) -> CopyWork:
        x = self.scope.expand
        sources = [x(s, i.line) for s in i.sources]
        workdir = self.state.config.get("WorkingDir") or "/"
        dest_raw = x(i.dest, i.line)
        dest = posixpath.normpath(posixpath.join(workdir, dest_raw))
        if dest_raw.endswith("/") or dest_raw in (".", "") or dest_raw.endswith("/."):
            dest = dest.rstrip("/") + "/"
        chmod = None
        if i.chmod:
            text = x(i.chmod, i.line)
            try:
                chmod = int(text, 8)
            except ValueError as err:
                raise DockerfileError(f"invalid --chmod {text!r}: expected an octal mode", i.line) from err
        files = []
        for doc in i.heredocs:
            content = doc.content
            if doc.expand:
                try:
                    content = expand_heredoc(content, self.scope.vars())
                except ExpansionError as err:
                    raise DockerfileError(str(err), i.line) from err
            files.append((doc.name, content))
        from_stage, from_image, from_context = self._source(x(i.from_, i.line) if i.from_ else None)
        add = isinstance(i, ins.Add)
        urls = tuple(s for s in sources if add and s.startswith(("http://", "https://")))
        local = tuple(s for s in sources if s not in urls)
        return CopyWork(local, dest, from_stage, from_image, x(i.chown, i.line) if i.chown else None, chmod,
                        tuple(files), add, urls, i.checksum if add else None, i.link,  # type: ignore[attr-defined]
                        from_context, tuple(x(e, i.line) for e in i.excludes))

    def _bound_key(self, m: MountSpec) -> str | None:
        """What a RUN sees through a bind mount: its stage's key, the image, or the context files' hash."""
        if m.from_stage is not None:
            return self.results[m.from_stage].key if m.from_stage in self.results else None
        if m.from_image is not None:
            return m.from_image
        context = self.named.dirs[m.from_context] if m.from_context else self.context
        if context is None:
            return None
        return str(context.content_hash(context.sources([m.source or "."])))

    def _copy_source_key(self, work: CopyWork) -> dict[str, Any]:
        key: dict[str, Any] = {"urls": [_url_version(u) for u in work.urls]} if work.urls else {}
        return {**key, **self._source_key(work)}

    def _source_key(self, work: CopyWork) -> dict[str, Any]:
        if work.from_stage is not None:
            return {"from_stage": self.results[work.from_stage].key if work.from_stage in self.results else None}
        if work.from_image is not None:
            return {"from_image": work.from_image}
        context = self.named.dirs[work.from_context] if work.from_context else self.context
        if not work.sources or context is None:
            return {}
        return {"content": str(context.content_hash(context.sources(list(work.sources))))}


def at_line(path: str, i: ins.AnyInstruction) -> BuildError:
    """The context a step's failure is reported in: `Dockerfile:3: COPY a /b: <cause>`."""
    return BuildError(f"{path}:{i.line}: {i.original}").citing_cause()


def _url_version(url: str) -> str:
    """What identifies a URL's content without fetching it: ETag, Last-Modified, length (else never cached)."""
    import os

    import requests

    try:
        resp = requests.head(url, allow_redirects=True, timeout=10)
        parts = [resp.headers.get(h, "") for h in ("ETag", "Last-Modified", "Content-Length")]
        if resp.ok and any(parts):
            return f"{url}|{'|'.join(parts)}"
    except requests.RequestException:
        pass
    return f"{url}|{os.urandom(16).hex()}"


def _size(text: str | None, line: int) -> int | None:
    if not text:
        return None
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    mult = units.get(text[-1].lower(), 1)
    try:
        return int(text[:-1] if mult > 1 else text) * mult
    except ValueError as err:
        raise DockerfileError(f"invalid --mount size {text!r}", line) from err


def _trigger(text: str, line: int) -> ins.AnyInstruction:
    i = parse_line(text, line)
    if isinstance(i, ins.From | ins.Onbuild | ins.Maintainer):
        raise DockerfileError(f"{i.keyword} isn't allowed as an ONBUILD trigger (from the base image)", line)
    return i


def _copy_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_json(v) for v in value]
    return value
