"""Run an image from the local store: layers as lowerdirs, a container directory, the spec, the executor.

A container keeps its upperdir and config under <store>/containers/<name> until it is
removed (--rm removes it as soon as the command ends, whatever the outcome).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from imagetool.descriptor import Descriptor, Platform
from imagetool.errors import ContainerError
from imagetool.runtime import binfmt, kept_containers
from imagetool.runtime.container import Container
from imagetool.runtime.etcfiles import EtcSettings
from imagetool.runtime.image import layer_dirs, load
from imagetool.runtime.spec import RunOptions, build_spec
from imagetool.store import roots
from imagetool.store.layout import LayoutStore

_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


@dataclass
class LaunchOptions:
    """run_image's settings: the container's own (RunOptions), and whether it is named, kept, run by runc."""

    run: RunOptions = field(default_factory=RunOptions)
    remove: bool = False
    name: str | None = None
    runtime: str = "embedded"
    interactive: bool = False
    platform: Platform | None = None
    #: how the user named the image (shown by `ps`)
    image_name: str = ""
    #: /etc/hosts lines, DNS settings
    etc: EtcSettings = field(default_factory=EtcSettings)
    #: for a foreign platform: (platform, lowerdirs top first, argv, env) -> raises when the program must not
    #: start as that platform's (a host program would run natively under the foreign label)
    check_program: Callable[[Platform | None, list[Path], list[str], list[str]], None] | None = None


def containers_dir(store: LayoutStore) -> Path:
    return roots.containers_root(store)


def run_image(store: LayoutStore, desc: Descriptor, options: LaunchOptions) -> int:
    """Run `desc` (an image in `store`) to completion; returns the command's exit status."""
    name = options.name or os.urandom(8).hex()
    if not _NAME.match(name):
        raise ContainerError(f"invalid container name {name!r}")
    cdir = containers_dir(store) / name
    registering = store.hold_shared()  # gc waits until the container is a root of what it uses
    try:
        image = load(store, desc, options.platform)
        platform = binfmt.require(image.config.doc, options.platform)  # a foreign image runs under its emulator
        lowers = layer_dirs(store, image.layers)
        spec = build_spec(image.run_config, options.run)
        if options.check_program is not None and platform is not None and not binfmt.native(platform):
            options.check_program(platform, lowers, spec["process"]["args"], spec["process"].get("env") or [])
        cdir.parent.mkdir(parents=True, exist_ok=True)
        try:
            cdir.mkdir()
        except FileExistsError as err:
            raise ContainerError(f"the container name {name!r} is already in use") from err
        try:
            (cdir / kept_containers.CONFIG).write_text(json.dumps({
                roots.IMAGE_KEY: str(desc.digest), "image_name": options.image_name, "created": time.time(),
                "spec": spec}))
        except BaseException:
            kept_containers.remove_dir(cdir)
            raise
    finally:
        registering.release()
    try:
        if not lowers:  # an image with no layers: an empty root
            (cdir / "empty").mkdir()
            lowers = [cdir / "empty"]
        stdin = None if options.interactive else subprocess.DEVNULL
        with kept_containers.Running(cdir):
            container = Container(spec, lowers, cdir / "upper", runtime=options.runtime, etc=options.etc)
            code = container.run(stdin=stdin)
            if not options.remove:
                kept_containers.record_exit(cdir, code)
        return code
    finally:
        if options.remove:
            kept_containers.remove_dir(cdir)
