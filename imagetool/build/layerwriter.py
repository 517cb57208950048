"""Write a layer blob into a store while it is being produced: tar -> diff_id hash -> compress -> store.

The producer pushes tar bytes; LayoutStore.put_blob pulls. A pipe joins them with the
producer on a thread, so nothing is held whole in memory; if the producer fails the
reader raises instead of returning EOF, so no truncated blob is ever stored.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, Optional, cast

from imagetool import compression, media
from imagetool.descriptor import Descriptor
from imagetool.digest import CHUNK, Digest, DigestingWriter
from imagetool.errors import BuildError, ImagetoolError
from imagetool.layer import chunked
from imagetool.build.rootview import RootView
from imagetool.store.layout import LayoutStore

Producer = Callable[[BinaryIO], None]


class _Sink:
    """A file-like writer over the pipe's write end."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
        return len(data)

    def flush(self) -> None:
        pass


class _PipeReader:
    def __init__(self, fd: int, done: Callable[[], BaseException | None]) -> None:
        self.fd = fd
        self._done = done

    def read(self, n: int = -1) -> bytes:
        data = os.read(self.fd, CHUNK if n is None or n < 0 else n)
        if not data:
            err = self._done()
            if err is not None:
                if isinstance(err, ImagetoolError):
                    raise err
                raise BuildError(f"writing layer: {err}").citing_cause() from err
        return data


def write_layer(store: LayoutStore, produce: Producer, algorithm: str | None = compression.GZIP,
                oci: bool = True) -> tuple[Descriptor, Digest]:
    """Run `produce(writer)` to write an uncompressed tar; store it compressed; return (descriptor, diff_id)."""
    rfd, wfd = os.pipe()
    state: dict[str, object] = {}

    def run() -> None:
        comp: Any = None
        try:
            sink = _Sink(wfd)
            if algorithm == chunked.NAME:
                comp = chunked.ChunkedWriter(sink)  # type: ignore[arg-type]
            else:
                comp = compression.compressor(sink, algorithm) if algorithm else None  # type: ignore[arg-type]
            tar_hash = DigestingWriter(comp if comp is not None else sink)
            produce(tar_hash)  # type: ignore[arg-type]
            closing, comp = comp, None
            if closing is not None:
                state["annotations"] = closing.close() or None
            state["diff_id"] = tar_hash.digest()
        except BaseException as err:  # noqa: BLE001 - handed to the reading side
            state["error"] = err
            if comp is not None:  # stop the compressor's worker threads too
                with contextlib.suppress(Exception):  # the first error is the one to report
                    comp.close()
        finally:
            os.close(wfd)

    thread = threading.Thread(target=run, name="layer-writer", daemon=True)
    thread.start()

    def done() -> BaseException | None:
        thread.join()
        return state.get("error")  # type: ignore[return-value]

    try:
        digest, size = store.put_blob(_PipeReader(rfd, done))  # type: ignore[arg-type]
    finally:
        os.close(rfd)
        thread.join()
    if "error" in state:
        raise BuildError(f"writing layer: {state['error']}")
    return (Descriptor(media.layer_type(oci, chunked.algorithm(algorithm)), digest, size,
                       state.get("annotations") or {}), state["diff_id"])  # type: ignore


def tar_directory(root: Path, out: BinaryIO, timestamp: int | None = None) -> None:
    """A deterministic tar of everything under `root`: sorted, numeric owners only, times clamped."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        for path, arcname in _sorted_walk(root):
            info = cast(Optional[tarfile.TarInfo], tar.gettarinfo(str(path), arcname))  # typeshed omits None
            if info is None:  # sockets have no tar form
                continue
            info.uname = info.gname = ""
            info.mtime = int(info.mtime) if timestamp is None else min(int(info.mtime), timestamp)
            if info.isreg():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)


def tar_view(view: RootView, out: BinaryIO, timestamp: int | None = None) -> None:
    """A deterministic tar of a merged filesystem (for --squash): every visible entry, no whiteouts."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        pending = [(f"/{n}", n) for n in reversed(view.listdir("/"))]
        while pending:
            path, arcname = pending.pop()
            found = view.locate(path)
            if found is None:
                continue
            info = cast(Optional[tarfile.TarInfo], tar.gettarinfo(str(found[0]), arcname))
            if info is None:
                continue
            info.uname = info.gname = ""
            info.mtime = int(info.mtime) if timestamp is None else min(int(info.mtime), timestamp)
            if info.isreg():
                with open(found[0], "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
            if info.isdir():
                pending.extend((f"{path}/{n}", f"{arcname}/{n}") for n in reversed(view.listdir(path)))


def _sorted_walk(root: Path):  # type: ignore[no-untyped-def]
    names = sorted(os.listdir(root))
    stack = [(root / n, n) for n in reversed(names)]
    while stack:
        path, arc = stack.pop()
        yield path, arc
        if stat.S_ISDIR(os.lstat(path).st_mode):
            children = sorted(os.listdir(path))
            stack.extend((path / n, f"{arc}/{n}") for n in reversed(children))


def copy_tar(source: BinaryIO, out: BinaryIO) -> None:
    """Pass an (uncompressed) tar stream through unchanged, checking on the way that it is one."""
    tee = _Tee(source, out)
    try:
        with tarfile.open(fileobj=tee, mode="r|") as tar:  # type: ignore[call-overload]
            for _member in tar:
                pass
    except tarfile.TarError as err:
        raise BuildError(f"not a valid tar archive: {err}") from err
    while tee.read(CHUNK):  # the end-of-archive padding
        pass


class _Tee:
    def __init__(self, source: BinaryIO, out: BinaryIO) -> None:
        self.source = source
        self.out = out

    def read(self, n: int = -1) -> bytes:
        data = self.source.read(n)
        if data:
            self.out.write(data)
        return data
