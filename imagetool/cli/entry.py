"""The process entry point: `main()`, then an exit that skips the interpreter's teardown.

Tearing down ~200 modules costs the `imagetool` process about as much as its own work in a
small command (8% of `run`'s instructions). Nothing of ours needs it: what the interpreter's
exit must still do is done here, in its order - wait for non-daemon threads, run the atexit
callbacks (weakref finalizers, temporary directories among them), flush stdout and stderr -
and the process then ends with os._exit. Library callers use imagetool.cli.main, which exits
the ordinary way.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing is not loaded yet when the early executor starts
    from collections.abc import Callable


#: whether the collector is off for the start-up only (imagetool/__main__.py), to be turned on by resume_gc
_gc_held = [False]


def resume_gc() -> None:
    """The subcommand is loaded (the root command's callback calls this): what start-up made stays, frozen out
    of the collector's walks, and the collector runs again."""
    if _gc_held[0]:
        _gc_held[0] = False
        gc.freeze()
        gc.enable()


#: whether run() is this process's entry (not a library caller of imagetool.cli.main)
_main = [False]


def before_subcommand() -> None:
    """Called before a subcommand's module loads: its classes' generated methods compile through
    imagetool.codecache (in the command line's own process only)."""
    if _main[0]:
        from imagetool import codecache

        codecache.install()


def run(gc_held: bool | None = None) -> None:
    """`gc_held`: the caller turned the collector off for the start-up (None: it is turned off here)."""
    if gc_held is None:
        gc_held = gc.isenabled()
        gc.disable()
    _gc_held[0] = gc_held
    _main[0] = True
    end_early = _early_executor(sys.argv[1:])
    from imagetool.cli import main

    try:
        main()
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    if end_early is not None:
        end_early()  # nothing if `run` took it
    if not isinstance(code, int):  # sys.exit("message") or None, as the interpreter treats them
        if code is not None:
            print(code, file=sys.stderr)
        code = 0 if code is None else 1
    threading = sys.modules.get("threading")
    if threading is not None:
        threading._shutdown()  # type: ignore[attr-defined]  # what Py_Finalize calls first
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 120  # the interpreter's status when flushing at exit fails
    os._exit(code & 0xFF)


#: `run` flags that keep standard input open (the executor is started with the streams it will have)
_INTERACTIVE = {"-i", "--interactive", "-it", "-ti"}


def _early_executor(argv: list[str]) -> Callable[[], None] | None:
    """`imagetool run ...`: start the container's executor (a fresh interpreter, tens of milliseconds of
    start-up on a busy machine) before this process loads click and the commands, so that the two
    start-ups overlap; `run` takes it (prestart.ahead_once) when its streams are the ones wanted.

    argv is only glanced at, up to the image name: a guess that misses (an option's value taken for
    the image, --runtime runc) leaves an executor nobody takes, which is ended here, unused."""
    if not argv or argv[0] != "run":
        return None
    interactive = False
    args = iter(argv[1:])
    for arg in args:
        if arg == "--runtime":
            arg = "--runtime=" + next(args, "")
        if arg.startswith("--runtime=") and arg != "--runtime=embedded":
            return None
        if arg == "--" or not arg.startswith("-"):
            break
        interactive = interactive or arg in _INTERACTIVE
    from imagetool.runtime import prestart

    return prestart.ahead(stdin=None if interactive else prestart.DEVNULL)
