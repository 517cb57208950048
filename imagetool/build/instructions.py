"""Typed, frozen Dockerfile instructions.

Arguments are kept as written (quotes and `$VAR` intact) wherever Docker expands them
later, because their values depend on ARG/ENV state only known while a stage runs;
the executor expands them with `imagetool.build.expand`. Every instruction carries the
line it starts on, so errors found at any stage can name it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Heredoc:
    """`<<EOF` ... `EOF`: `expand` is false when the delimiter was quoted; `<<-` strips leading tabs."""

    name: str
    content: str
    expand: bool = True
    chomp: bool = False


@dataclass(frozen=True)
class Command:
    """Shell form (`shell` set, run through SHELL) or exec form (`argv` set, run as is)."""

    shell: str | None = None
    argv: tuple[str, ...] | None = None

    @property
    def is_exec(self) -> bool:
        return self.argv is not None

    def to_list(self, shell: tuple[str, ...]) -> list[str]:
        """The config's Cmd/Entrypoint list: exec form verbatim, shell form wrapped in the shell."""
        if self.argv is not None:
            return list(self.argv)
        return [*shell, self.shell or ""]


@dataclass(frozen=True)
class Mount:
    """RUN --mount=type=...: options kept unexpanded as key -> value (flags have value "")."""

    type: str
    options: tuple[tuple[str, str], ...]

    def get(self, *keys: str, default: str | None = None) -> str | None:
        for k, v in self.options:
            if k in keys:
                return v
        return default


@dataclass(frozen=True)
class Instruction:
    line: int
    #: the instruction as written, continuation lines joined (history and cache keys use it)
    original: str = field(default="", compare=False)

    @property
    def keyword(self) -> str:
        return type(self).__name__.upper()


@dataclass(frozen=True)
class From(Instruction):
    image: str = ""
    name: str | None = None
    platform: str | None = None


@dataclass(frozen=True)
class Run(Instruction):
    command: Command = Command(shell="")
    heredocs: tuple[Heredoc, ...] = ()
    network: str | None = None
    security: str | None = None
    mounts: tuple[Mount, ...] = ()


@dataclass(frozen=True)
class Copy(Instruction):
    sources: tuple[str, ...] = ()
    dest: str = ""
    from_: str | None = None
    chown: str | None = None
    chmod: str | None = None
    link: bool = False
    heredocs: tuple[Heredoc, ...] = ()
    #: --exclude patterns (.dockerignore syntax), kept unexpanded
    excludes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Add(Copy):
    checksum: str | None = None


@dataclass(frozen=True)
class Env(Instruction):
    pairs: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Arg(Instruction):
    #: (name, default as written or None)
    pairs: tuple[tuple[str, str | None], ...] = ()


@dataclass(frozen=True)
class Label(Instruction):
    pairs: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Workdir(Instruction):
    path: str = ""


@dataclass(frozen=True)
class User(Instruction):
    user: str = ""


@dataclass(frozen=True)
class Expose(Instruction):
    ports: tuple[str, ...] = ()


@dataclass(frozen=True)
class Entrypoint(Instruction):
    command: Command = Command(shell="")


@dataclass(frozen=True)
class Cmd(Instruction):
    command: Command = Command(shell="")


@dataclass(frozen=True)
class Volume(Instruction):
    paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class Shell(Instruction):
    argv: tuple[str, ...] = ()


@dataclass(frozen=True)
class Stopsignal(Instruction):
    signal: str = ""


@dataclass(frozen=True)
class Healthcheck(Instruction):
    """`test` is the config's Test list: ["NONE"], ["CMD", ...] or ["CMD-SHELL", cmd]; durations in ns."""

    test: tuple[str, ...] = ()
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


@dataclass(frozen=True)
class Onbuild(Instruction):
    trigger: AnyInstruction | None = None
    #: the trigger's text as stored in the image config's OnBuild list
    expression: str = ""


@dataclass(frozen=True)
class Maintainer(Instruction):
    author: str = ""


AnyInstruction = (From | Run | Copy | Add | Env | Arg | Label | Workdir | User | Expose | Entrypoint | Cmd
                  | Volume | Shell | Stopsignal | Healthcheck | Onbuild | Maintainer)
