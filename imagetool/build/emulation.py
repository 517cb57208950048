"""RUN steps of a foreign platform: checked against the registered emulators before the build starts.

A stage runs on its FROM --platform, else on its parent stage's platform, else on the build's
target (the host's by default). Every needed stage with a RUN step must be executable here,
natively or through a qemu emulator in binfmt_misc, before the first step runs: a build that
would stop at its tenth step for want of an emulator stops at once, and tags nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from imagetool import userns
from imagetool.build import instructions as ins
from imagetool.build.config import DEFAULT_PATH
from imagetool.build.rootview import RootView
from imagetool.build.stages import BuildPlan
from imagetool.build.stagewalker import RunWork
from imagetool.descriptor import Platform, normalized
from imagetool.errors import BuildError, ContainerError
from imagetool.runtime import binfmt


def stage_platform(p: BuildPlan, index: int, target: Platform | None) -> Platform | None:
    """The platform stage `index` is built for, as far as the Dockerfile says (None: the host's)."""
    st = p.stages[index]
    if st.platform:
        try:
            return Platform.parse(st.platform)
        except ValueError as err:
            raise BuildError(f"FROM --platform: {err}") from err
    if st.base_stage is not None:
        return stage_platform(p, st.base_stage, target)
    return target


def check_plan(p: BuildPlan, target: Platform | None) -> None:
    """Refuse, in one line, a build whose RUN steps this machine could not execute."""
    for n in p.needed:
        if any(isinstance(i, ins.Run) for i in p.stages[n].instructions):
            runnable(stage_platform(p, n, target))


def runnable(platform: Platform | None, lowers: list[Path] | None = None, work: RunWork | None = None) -> None:
    """A RUN step for `platform` can execute here: natively, or through a registered emulator; and the
    program it starts (in the root of `lowers`, top first) is that platform's, not this machine's, which
    the kernel would run natively under a foreign label."""
    if platform is None:
        return
    try:
        binfmt.emulator(platform)
    except ContainerError as err:
        raise BuildError(f"RUN for {err}") from err
    if lowers is not None and work is not None and work.argv:
        wrong = foreign_program(platform, lowers, work.argv[0], work.env)
        if wrong:
            raise BuildError(f"RUN for {platform}: {wrong}")


def foreign_program(platform: Platform | None, lowers: list[Path], argv0: str, env: Sequence[str]) -> str | None:
    """Why the program `argv0` (PATH searched, in the root of `lowers`, top first) must not start as
    `platform`'s: it is this machine's (or a third architecture's) while the platform is foreign, and
    the kernel would run it natively under the foreign label. None when it may start."""
    if platform is None or binfmt.native(platform):
        return None
    program, arch = userns.call(_program_arch, lowers, argv0, tuple(env))
    if arch is not None and arch != normalized(platform).architecture:
        return f"{program} is a linux/{arch} program (the image's files are not {platform}'s)"
    return None


def check_run(platform: Platform | None, lowers: list[Path], argv: Sequence[str], env: Sequence[str]) -> None:
    """`run`'s check (runtime/launch calls it as LaunchOptions.check_program): ContainerError, one line."""
    wrong = foreign_program(platform, lowers, argv[0], env) if argv else None
    if wrong:
        raise ContainerError(wrong)


def _program_arch(lowers: list[Path], argv0: str, env: tuple[str, ...]) -> tuple[str, str | None]:
    """(the program argv0 names, as PATH finds it; the architecture its ELF header says, None if not ELF)."""
    view = RootView(lowers)
    candidates = [argv0]
    if "/" not in argv0:
        path = next((e[5:] for e in env if e.startswith("PATH=")), DEFAULT_PATH)
        candidates = [f"{d.rstrip('/')}/{argv0}" for d in path.split(":") if d.startswith("/")]
    for candidate in candidates:
        head = view.read(candidate, 20)
        if head is not None:
            return candidate, binfmt.elf_arch(head)
    return argv0, None
