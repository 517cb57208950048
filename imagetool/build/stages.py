"""The multi-stage graph: stages, what each depends on, which a --target needs, and ARG scoping.

Docker's scoping: ARGs before the first FROM are global and usable only in FROM lines;
a stage sees a global ARG only after re-declaring it (`ARG NAME`). --build-arg values
override defaults of declared ARGs. The proxy ARGs need no declaration and reach RUN as
environment only; the platform ARGs (TARGETARCH, ...) are predefined in the global scope.
ENV beats ARG of the same name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from imagetool.build import instructions as ins
from imagetool.build.dockerfile import Dockerfile
from imagetool.build.expand import ExpansionError, expand
from imagetool.descriptor import Platform, host_platform
from imagetool.errors import DockerfileError, InvalidReference
from imagetool.reference import parse as parse_reference
from imagetool.transports import parse_image_name

PROXY_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
              "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")
SCRATCH = "scratch"


def platform_args(build: Platform | None = None, target: Platform | None = None) -> dict[str, str]:
    """BUILDPLATFORM, TARGETARCH, ...: what the global scope predefines."""
    build = build or host_platform()
    target = target or build
    out: dict[str, str] = {}
    for prefix, p in (("BUILD", build), ("TARGET", target)):
        out[f"{prefix}PLATFORM"] = str(p)
        out[f"{prefix}OS"] = p.os
        out[f"{prefix}ARCH"] = p.architecture
        out[f"{prefix}VARIANT"] = p.variant
    return out


class Scope:
    """ARG and ENV values while a stage's instructions are walked (statically here, for real in the executor)."""

    def __init__(self, global_args: Mapping[str, str], build_args: Mapping[str, str],
                 env: Mapping[str, str] | None = None, escape: str = "\\") -> None:
        self.global_args = dict(global_args)
        self.build_args = dict(build_args)
        self.args: dict[str, str] = {}
        self.env: dict[str, str] = dict(env or {})
        self.escape = escape
        self.used: set[str] = set()

    def vars(self) -> dict[str, str]:
        return {**self.args, **self.env}

    def expand(self, word: str, line: int) -> str:
        try:
            return expand(word, self.vars(), self.escape)
        except ExpansionError as err:
            raise DockerfileError(str(err), line) from err

    def declare(self, arg: ins.Arg) -> None:
        for name, default in arg.pairs:
            if name in self.build_args:
                self.args[name] = self.build_args[name]
                self.used.add(name)
            elif default is not None:
                self.args[name] = self.expand(default, arg.line)
            elif name in self.global_args:
                self.args[name] = self.global_args[name]
            else:
                self.args.pop(name, None)

    def set_env(self, env: ins.Env) -> list[tuple[str, str]]:
        """Apply ENV; every value sees the variables as they were before this instruction."""
        before = self.vars()
        try:
            pairs = [(expand(k, before, self.escape), expand(v, before, self.escape)) for k, v in env.pairs]
        except ExpansionError as err:
            raise DockerfileError(str(err), env.line) from err
        self.env.update(pairs)
        return pairs

    def run_env(self) -> list[str]:
        """The environment a RUN sees: ENV, then ARGs ENV does not override, then undeclared proxy args."""
        out = dict(self.env)
        for k, v in self.args.items():
            out.setdefault(k, v)
        for k in PROXY_ARGS:
            if k in self.build_args and k not in out:
                out[k] = self.build_args[k]
        return [f"{k}={v}" for k, v in out.items()]


@dataclass(frozen=True)
class Stage:
    index: int
    name: str | None
    from_: ins.From
    instructions: tuple[ins.AnyInstruction, ...]
    base: str = ""                       # FROM's image, expanded with the global ARGs
    platform: str | None = None          # --platform, expanded
    base_stage: int | None = None        # FROM an earlier stage
    #: stages this one copies or mounts from (COPY --from, RUN --mount from=)
    stage_deps: tuple[int, ...] = ()
    #: images (not stages) this one copies or mounts from
    image_deps: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        return self.name or str(self.index)

    @property
    def is_scratch(self) -> bool:
        return self.base_stage is None and self.base.lower() == SCRATCH


@dataclass(frozen=True)
class BuildPlan:
    stages: tuple[Stage, ...]
    target: int
    #: the stages a build of `target` runs, dependencies first
    needed: tuple[int, ...]
    global_args: Mapping[str, str] = field(default_factory=dict)
    build_args: Mapping[str, str] = field(default_factory=dict)
    #: --build-arg names no ARG (of a needed stage or the global scope) declares
    unused_args: tuple[str, ...] = ()
    dockerfile: str = "Dockerfile"
    #: what BuildKit's checks would flag but still builds (a stage name used twice)
    warnings: tuple[str, ...] = ()

    def stage(self, ref: str) -> Stage:
        return self.stages[find_stage(self.stages, ref, len(self.stages))]  # type: ignore[index]


def find_stage(stages: Iterable[Stage], ref: str, before: int) -> int | None:
    """The index of the stage `ref` (a name or a number) among those before `before`; None if it names none."""
    stages = list(stages)
    if ref.isdigit():
        n = int(ref)
        return n if n < before else None
    lowered = ref.lower()
    for st in reversed(stages[:before]):  # a name given twice means its latest stage, as in BuildKit
        if st.name == lowered:
            return st.index
    return None


def _split(df: Dockerfile) -> list[tuple[ins.From, list[ins.AnyInstruction]]]:
    out: list[tuple[ins.From, list[ins.AnyInstruction]]] = []
    for i in df.instructions:
        if isinstance(i, ins.From):
            out.append((i, []))
        elif out:
            out[-1][1].append(i)
    return out


def _global_scope(df: Dockerfile, build_args: Mapping[str, str], predefined: Mapping[str, str]) -> Scope:
    scope = Scope(predefined, build_args, escape=df.escape)
    scope.args.update(predefined)
    for arg in df.global_args:
        scope.declare(arg)  # type: ignore[arg-type]
    return scope


def _image_or_stage(value: str, stages: list[Stage], index: int, line: int, what: str,
                    all_names: list[str | None], named: Mapping[str, str | None]) -> int | str | None:
    """The stage `value` names, else the image (a named context's image), else None for a named directory."""
    found = find_stage(stages, value, index)
    if found is not None:
        return found
    if value in named:
        return named[value]
    if value.isdigit():
        raise DockerfileError(f"invalid {what} {value!r}: refers to the current or a later build stage", line)
    if value.lower() in all_names[index:]:
        raise DockerfileError(f"{what} {value!r} refers to the current or a later build stage", line)
    try:
        parse_reference(value)
    except InvalidReference as err:
        raise DockerfileError(f"{what} {value!r} is neither a build stage nor a valid image name", line) \
            from err
    return value


def plan(df: Dockerfile, build_args: Mapping[str, str] | None = None, target: str | None = None,
         build_platform: Platform | None = None, target_platform: Platform | None = None,
         named: Mapping[str, str | None] | None = None, first_from: str | None = None) -> BuildPlan:
    """Resolve stages, their dependencies and the ones a build of `target` (default: the last) needs.

    `named` are the --build-context names: the image each stands for, or None for a directory;
    `first_from` replaces the first FROM's image (buildah's --from)."""
    try:
        return _plan(df, build_args, target, build_platform, target_platform, named or {}, first_from)
    except DockerfileError as err:
        if err.file != df.path:
            raise DockerfileError(err.reason, err.line, df.path) from err
        raise


def _plan(df: Dockerfile, build_args: Mapping[str, str] | None, target: str | None,
          build_platform: Platform | None, target_platform: Platform | None,
          named: Mapping[str, str | None], first_from: str | None) -> BuildPlan:
    build_args = dict(build_args or {})
    predefined = platform_args(build_platform, target_platform)
    gscope = _global_scope(df, build_args, predefined)
    global_args = dict(gscope.args)
    used = set(gscope.used)
    stages: list[Stage] = []
    warnings: list[str] = []
    split = _split(df)
    all_names = [frm.name for frm, _ in split]
    for index, (frm, body) in enumerate(split):
        base = first_from if index == 0 and first_from else gscope.expand(frm.image, frm.line)
        if not base:
            raise DockerfileError("FROM names an empty image (an ARG without a value?)", frm.line)
        platform = gscope.expand(frm.platform, frm.line) if frm.platform else None
        if platform:
            try:
                Platform.parse(platform)
            except ValueError as err:
                raise DockerfileError(f"FROM --platform={platform}: {err}", frm.line) from err
        if frm.name and frm.name in {s.name for s in stages}:
            warnings.append(f"{df.path}:{frm.line}: duplicate stage name {frm.name!r}: later references "
                            f"mean this stage")
        # FROM <number>: an earlier stage by its index (buildah's extension; Docker reads an image name)
        base_stage = find_stage(stages, base, index)
        if base_stage is None and base.isdigit():
            raise DockerfileError(f"FROM {base}: refers to the current or a later build stage", frm.line)
        if base_stage is None and base in named:
            image = named[base]
            if image is None:
                raise DockerfileError(f"FROM {base}: that build context is a directory, not an image", frm.line)
            base = image
        if base_stage is None and base.lower() != SCRATCH:
            try:
                parse_image_name(base)  # a name, or TRANSPORT:REF (oci:DIR:TAG, docker://...) as buildah takes
            except InvalidReference as err:
                raise DockerfileError(f"invalid base image {base!r}: {err}", frm.line) from err
        scope = Scope(global_args, build_args, escape=df.escape)
        deps: list[int] = []
        images: list[str] = []
        for i in body:
            if isinstance(i, ins.Arg):
                scope.declare(i)
            elif isinstance(i, ins.Env):
                scope.set_env(i)
            sources = []
            if isinstance(i, ins.Copy) and not isinstance(i, ins.Add) and i.from_:
                sources.append(("COPY --from", i.from_))
            if isinstance(i, ins.Run):
                sources += [("RUN --mount from", m.get("from") or "") for m in i.mounts if m.get("from")]
            for what, raw in sources:
                dep = _image_or_stage(scope.expand(raw, i.line), stages, index, i.line, what, all_names, named)
                if isinstance(dep, int):
                    deps.append(dep)
                elif dep is not None:
                    images.append(dep)
        used |= scope.used
        stages.append(Stage(index, frm.name, frm, tuple(body), base, platform, base_stage,
                            tuple(dict.fromkeys(deps)), tuple(dict.fromkeys(images))))
    if target:
        found = find_stage(stages, target, len(stages))
        if found is None:
            names = ", ".join(s.ref for s in stages)
            raise DockerfileError(f"target stage {target!r} could not be found (stages: {names})", file=df.path)
        tgt = found
    else:
        tgt = len(stages) - 1
    needed = needed_stages(stages, tgt)
    unused = tuple(sorted(k for k in build_args if k not in used and k not in PROXY_ARGS))
    return BuildPlan(tuple(stages), tgt, needed, global_args, build_args, unused, df.path, tuple(warnings))


def needed_stages(stages: list[Stage] | tuple[Stage, ...], target: int) -> tuple[int, ...]:
    """`target` and every stage it reaches through FROM, COPY --from and RUN --mount from=, in index order."""
    seen: set[int] = set()
    pending = [target]
    while pending:
        n = pending.pop()
        if n in seen:
            continue
        seen.add(n)
        st = stages[n]
        if st.base_stage is not None:
            pending.append(st.base_stage)
        pending.extend(st.stage_deps)
    return tuple(sorted(seen))
