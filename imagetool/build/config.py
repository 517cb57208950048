"""Instructions that only edit the image config (ENV, LABEL, WORKDIR, USER, CMD, ...).

Shared by the build executor and by `import --change`, so both give an instruction the
same meaning. Values are expanded with the stage's Scope where Docker expands them.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Any

from imagetool.build import instructions as ins
from imagetool.build.expand import ExpansionError, unquote
from imagetool.build.stages import Scope
from imagetool.errors import DockerfileError

DEFAULT_SHELL = ("/bin/sh", "-c")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: instructions podman/buildah accept as --change
CHANGE_INSTRUCTIONS = (ins.Cmd, ins.Entrypoint, ins.Env, ins.Expose, ins.Label, ins.Onbuild, ins.Stopsignal,
                       ins.User, ins.Volume, ins.Workdir)


@dataclass
class ConfigState:
    """The mutable image config section of a stage, plus what Docker keeps beside it."""

    config: dict[str, Any] = field(default_factory=dict)
    author: str = ""
    shell: tuple[str, ...] = DEFAULT_SHELL
    #: CMD set by this stage (an ENTRYPOINT then leaves it alone)
    cmd_set: bool = False
    #: a SHELL was given (here or in the base): the config records it even when it is the default
    shell_set: bool = False

    @classmethod
    def from_image(cls, doc: dict[str, Any] | None) -> ConfigState:
        doc = doc or {}
        cfg = dict(doc.get("config") or {})
        given = cfg.pop("Shell", None)
        return cls(cfg, str(doc.get("author", "") or ""), tuple(given or DEFAULT_SHELL), shell_set=bool(given))

    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in self.config.get("Env") or []:
            k, _, v = item.partition("=")
            out[k] = v
        return out

    def set_env(self, key: str, value: str) -> None:
        env = list(self.config.get("Env") or [])
        for n, item in enumerate(env):
            if item.partition("=")[0] == key:
                env[n] = f"{key}={value}"
                break
        else:
            env.append(f"{key}={value}")
        self.config["Env"] = env


def _words(scope: Scope, words: tuple[str, ...], line: int) -> list[str]:
    return [scope.expand(w, line) for w in words]


def apply(state: ConfigState, i: ins.AnyInstruction, scope: Scope) -> bool:
    """Apply a config-only instruction; False when `i` is not one (RUN, COPY, ADD, FROM)."""
    cfg = state.config
    if isinstance(i, ins.Arg):
        scope.declare(i)
    elif isinstance(i, ins.Env):
        for k, v in scope.set_env(i):
            state.set_env(k, v)
    elif isinstance(i, ins.Label):
        labels = dict(cfg.get("Labels") or {})
        for k, v in i.pairs:
            labels[scope.expand(k, i.line)] = scope.expand(v, i.line)
        cfg["Labels"] = labels
    elif isinstance(i, ins.Workdir):
        path = scope.expand(i.path, i.line)
        cfg["WorkingDir"] = posixpath.normpath(posixpath.join(cfg.get("WorkingDir") or "/", path))
    elif isinstance(i, ins.User):
        cfg["User"] = scope.expand(i.user, i.line)
    elif isinstance(i, ins.Expose):
        ports = dict(cfg.get("ExposedPorts") or {})
        for word in _words(scope, i.ports, i.line):
            for port in word.split():
                ports[port if "/" in port else port + "/tcp"] = {}
        cfg["ExposedPorts"] = ports
    elif isinstance(i, ins.Volume):
        vols = dict(cfg.get("Volumes") or {})
        for path in _words(scope, i.paths, i.line):
            vols[path] = {}
        cfg["Volumes"] = vols
    elif isinstance(i, ins.Cmd):
        cfg["Cmd"] = i.command.to_list(state.shell)
        state.cmd_set = True
    elif isinstance(i, ins.Entrypoint):
        cfg["Entrypoint"] = i.command.to_list(state.shell)
        if not state.cmd_set:
            cfg.pop("Cmd", None)
    elif isinstance(i, ins.Shell):
        state.shell = i.argv
        state.shell_set = True
    elif isinstance(i, ins.Stopsignal):
        cfg["StopSignal"] = scope.expand(i.signal, i.line)
    elif isinstance(i, ins.Healthcheck):
        hc: dict[str, Any] = {"Test": list(i.test)}
        for key, value in (("Interval", i.interval), ("Timeout", i.timeout), ("StartPeriod", i.start_period),
                           ("StartInterval", i.start_interval), ("Retries", i.retries)):
            if value:
                hc[key] = value
        cfg["Healthcheck"] = hc
    elif isinstance(i, ins.Onbuild):
        cfg["OnBuild"] = [*(cfg.get("OnBuild") or []), i.expression]
    elif isinstance(i, ins.Maintainer):
        try:
            state.author = unquote(i.author)
        except ExpansionError as err:
            raise DockerfileError(str(err), i.line) from err
    else:
        return False
    return True


def apply_changes(state: ConfigState, changes: list[str] | tuple[str, ...], scope: Scope) -> None:
    """`--change "CMD ..."` values: only instructions that edit the config are allowed."""
    from imagetool.build.dockerfile import parse_line

    for text in changes:
        i = parse_line(text)
        if not isinstance(i, CHANGE_INSTRUCTIONS):
            raise DockerfileError(f"{i.keyword} is not allowed in a change (use one of "
                                  f"{', '.join(c.__name__.upper() for c in CHANGE_INSTRUCTIONS)})",
                                  file=f"change {text!r}")
        apply(state, i, scope)
