"""imagetool: copy, inspect, sign, run and build OCI container images.

The library API. Every name loads its module on first use, so `import imagetool` stays cheap (the
command line starts with it):

    parse_image_name(text) -> ImageReference
        "oci:./layout:v1", "docker://host/repo:tag", "dir:./d", "docker-archive:./a.tar", or a bare
        name ("localhost/app:1") for the local store
    SystemContext(...)
        one side's settings: credentials, TLS, registries.d, the local store's path, temporary files
    copy_image(src, dest, CopyOptions(...)) -> CopyResult
        any transport to any other, under the trust policy (policy.json unless CopyOptions.policy says)
    inspect_image(ref, ctx) -> dict
        what `imagetool inspect` prints: digest, tags, labels, platform, layers
    pull_image(source, CopyOptions(...), policy="missing") -> list[Pulled]
        an image into the local store, named as buildah names it; Pulled has its store and descriptor
    build_image(BuildOptions(...)) -> BuildResult
        a Dockerfile built into a LayoutStore; RUN steps need BuildOptions.runner=ContainerStepRunner()
    run_image(store, descriptor, LaunchOptions(RunOptions(...))) -> int
        a container of an image in the local store, run to completion; returns its exit status
    LayoutStore.open(path) / LayoutStore.create(path), default_store_path()
        the local store, an OCI image layout

Failures raise subclasses of ImagetoolError (imagetool.errors), each with a one-line message.
The README's "Python API" section has a runnable example of each entry point.
"""

from __future__ import annotations

#: typing.TYPE_CHECKING without importing typing: `import imagetool` comes before the command line turns
#: the cyclic collector off for its start-up (__main__.py)
TYPE_CHECKING = False

__version__ = "0.1.0"

#: exported name -> (module, attribute) it is loaded from on first use
_LAZY: dict[str, tuple[str, str]] = {
    "parse_image_name": ("imagetool.transports", "parse_image_name"),
    "ImageReference": ("imagetool.transports.base", "ImageReference"),
    "SystemContext": ("imagetool.transports.base", "SystemContext"),
    "copy_image": ("imagetool.copy", "copy_image"),
    "CopyOptions": ("imagetool.copy.options", "CopyOptions"),
    "CopyResult": ("imagetool.copy.options", "CopyResult"),
    "ACCEPT_ANYTHING": ("imagetool.copy.options", "ACCEPT_ANYTHING"),
    "inspect_image": ("imagetool.inspect", "inspect_image"),
    "pull_image": ("imagetool.pull", "pull_image"),
    "Pulled": ("imagetool.pull", "Pulled"),
    "build_image": ("imagetool.build.executor", "build"),
    "BuildOptions": ("imagetool.build.executor", "BuildOptions"),
    "BuildResult": ("imagetool.build.executor", "BuildResult"),
    "ContainerStepRunner": ("imagetool.build.runstep", "ContainerStepRunner"),
    "run_image": ("imagetool.runtime.launch", "run_image"),
    "LaunchOptions": ("imagetool.runtime.launch", "LaunchOptions"),
    "RunOptions": ("imagetool.runtime.spec", "RunOptions"),
    "LayoutStore": ("imagetool.store.layout", "LayoutStore"),
    "default_store_path": ("imagetool.store", "default_store_path"),
    "ImagetoolError": ("imagetool.errors", "ImagetoolError"),
}

#: spelled out (not built from _LAZY) so type checkers see the exports; tests/test_readme.py keeps both equal
__all__ = [
    "__version__", "parse_image_name", "ImageReference", "SystemContext", "copy_image", "CopyOptions",
    "CopyResult", "ACCEPT_ANYTHING", "inspect_image", "pull_image", "Pulled", "build_image", "BuildOptions",
    "BuildResult", "ContainerStepRunner", "run_image", "LaunchOptions", "RunOptions", "LayoutStore",
    "default_store_path", "ImagetoolError",
]

if TYPE_CHECKING:
    from typing import Any

    from imagetool.build.executor import BuildOptions, BuildResult
    from imagetool.build.executor import build as build_image
    from imagetool.build.runstep import ContainerStepRunner
    from imagetool.copy import copy_image
    from imagetool.copy.options import ACCEPT_ANYTHING, CopyOptions, CopyResult
    from imagetool.errors import ImagetoolError
    from imagetool.inspect import inspect_image
    from imagetool.pull import Pulled, pull_image
    from imagetool.runtime.launch import LaunchOptions, run_image
    from imagetool.runtime.spec import RunOptions
    from imagetool.store import default_store_path
    from imagetool.store.layout import LayoutStore
    from imagetool.transports import parse_image_name
    from imagetool.transports.base import ImageReference, SystemContext


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'imagetool' has no attribute {name!r}")
    import importlib

    module, attribute = _LAZY[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
