"""`python -m imagetool` and the `imagetool` command: the cyclic collector goes off before click loads.

Start-up makes ~100k objects (modules, classes, click's commands) that live to the end; the collector
would walk them again and again while they are made (5% of a small command's instructions).
imagetool.cli.entry turns it back on once the subcommand is loaded.
"""

import gc


def main() -> None:
    held = gc.isenabled()
    gc.disable()
    from imagetool import deferred

    deferred.install()
    from imagetool.cli import entry

    entry.run(gc_held=held)


if __name__ == "__main__":
    main()
