"""Partial pulls: a zstd:chunked layer from a registry into the local store, fetching only the file
contents that no snapshot in the store already holds.

For one layer: read the TOC and tar-split with one Range request and verify them (layer/chunked_toc);
look each regular file's content digest up in the store's snapshots (each snapshot keeps a
contents.json index: digest -> path, made from its TOC or, for other snapshots, by hashing once);
fetch the missing contents with coalesced multi-range requests, decompress each and check its digest;
meanwhile rebuild the layer tar from the tar-split and the contents and unpack it through the ordinary
unpacker into a new snapshot, published only when the tar hashes to the layer's diff_id. The fetch runs
in a thread beside the rebuild: hashing the reused files before a missing one (the diff_id check reads
every byte) overlaps its download, and the rebuild waits only for a content it has reached.

The blob itself is not stored: the snapshot is what a run needs. Registries that ignore Range
(a 200 for the TOC request) get the whole-blob copy instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagetool.descriptor import Descriptor
from imagetool.digest import Digest, Readable
from imagetool.errors import ImagetoolError, LayerError
from imagetool.layer import chunked, chunked_toc
from imagetool.layer.chunked_toc import FileRange, TOCError
from imagetool.layer.iterstream import IteratorStream
from imagetool.registry import ranges as blob_ranges
from imagetool.store import origins
from imagetool.store.layout import TEMP_PREFIX, LayoutStore
from imagetool.store.snapshots import CONTENTS, SnapshotStore, chain_id

#: missing ranges closer than this are fetched as one (the header frames between files are tiny)
GAP = 64 << 10
_O_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


class NoRanges(Exception):
    """The registry answered a Range request with the whole blob: copy the blob instead."""


@dataclass
class PullStats:
    files: int = 0
    reused: int = 0
    fetched: int = 0
    #: compressed bytes of the blob asked for (metadata and missing contents)
    requested_bytes: int = 0
    requests: int = 0
    reused_paths: list[str] = field(default_factory=list)
    #: the store had the layer on another parent: its snapshot was cloned, nothing asked for
    cloned: bool = False


def possible(src: Any, dst: Any, desc: Descriptor) -> bool:
    """A zstd:chunked layer from a registry into a store that keeps snapshots."""
    return (chunked.is_chunked(dict(desc.annotations)) and getattr(dst, "partial_pulls", False)
            and hasattr(src, "client") and hasattr(src, "repo") and desc.size > 0)


def _open_under(tree: Path, rel: str) -> int:
    """Open tree/rel for reading without following any symlink on the way (the tree is a layer's)."""
    fd = os.open(tree, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        parts = [p for p in rel.split("/") if p not in ("", ".")]
        if not parts or ".." in parts:
            raise FileNotFoundError(rel)
        for part in parts[:-1]:
            nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = nxt
        out = os.open(parts[-1], _O_READ, dir_fd=fd)
    finally:
        os.close(fd)
    if not stat.S_ISREG(os.fstat(out).st_mode):
        os.close(out)
        raise FileNotFoundError(rel)
    return out


def _hash_fd(fd: int) -> str:
    h = hashlib.sha256()
    while block := os.read(fd, 1 << 20):
        h.update(block)
    return "sha256:" + h.hexdigest()


class ContentIndex:
    """Which file contents the store's snapshots hold, by digest."""

    def __init__(self, snapshots: SnapshotStore) -> None:
        self.snapshots = snapshots
        self._index: dict[str, tuple[Path, str]] | None = None

    def _load(self) -> dict[str, tuple[Path, str]]:
        if self._index is None:
            self._index = {}
            for chain in self.snapshots.chains():
                tree = self.snapshots.path(chain)
                if not tree.is_dir():
                    continue
                for digest, rel in self._contents(tree).items():
                    self._index.setdefault(digest, (tree, rel))
        return self._index

    def _contents(self, tree: Path) -> dict[str, str]:
        path = tree.parent / CONTENTS
        try:
            doc = json.loads(path.read_text())
            if isinstance(doc, dict):
                return {str(k): str(v) for k, v in doc.items()}
        except (OSError, ValueError):
            pass
        found: dict[str, str] = {}  # a snapshot unpacked from a whole blob: hashed once, then kept
        for root, _dirs, names in os.walk(tree):
            for name in names:
                full = os.path.join(root, name)
                rel = os.path.relpath(full, tree)
                try:
                    fd = _open_under(tree, rel)
                except OSError:
                    continue
                try:
                    if os.fstat(fd).st_size:
                        found.setdefault(_hash_fd(fd), rel)
                except OSError:
                    continue
                finally:
                    os.close(fd)
        try:
            tmp = path.with_name(f".{CONTENTS}.{os.getpid()}")
            tmp.write_text(json.dumps(found))
            os.replace(tmp, path)
        except OSError:
            pass  # a store we may not write to: the index is only a cache
        return found

    def find(self, f: FileRange) -> tuple[Path, str] | None:
        """A snapshot file said to hold f's content. Not hashed here: its bytes become part of the rebuilt
        tar, which must hash to the diff_id before the new snapshot is published."""
        hit = self._load().get(str(f.digest))
        if hit is None:
            return None
        try:
            fd = _open_under(*hit)
        except OSError:
            return None
        try:
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        return hit if size == f.size else None


def _coalesce(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if out and a - out[-1][1] <= GAP:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


class _Limited:
    def __init__(self, part: Any, n: int) -> None:
        self._part = part
        self.left = n

    def read(self, n: int = -1) -> bytes:
        if not self.left:
            return b""
        data: bytes = self._part.read(self.left if n is None or n < 0 else min(n, self.left))
        self.left -= len(data)
        return data


class _Fetcher:
    """Missing contents fetched into a temp dir, each decompressed and checked against its digest."""

    def __init__(self, client: Any, repo: str, desc: Descriptor, workdir: Path, stats: PullStats) -> None:
        self.client, self.repo, self.desc = client, repo, desc
        self.workdir = workdir
        self.stats = stats
        #: set once a content is fetched and verified (or once the fetch has ended, for the rest)
        self.ready: dict[Digest, threading.Event] = {}
        self.error: BaseException | None = None
        self.stop = False
        self._thread: threading.Thread | None = None

    def path(self, f: FileRange) -> Path:
        return self.workdir / f.digest.hex

    def _request(self, spans: list[tuple[int, int]]) -> Iterator[tuple[int, int, Any]]:
        self.stats.requests += 1
        self.stats.requested_bytes += sum(b - a for a, b in spans)
        return blob_ranges.parts(self.client, self.repo, self.desc.digest, self.desc.size, spans)

    def metadata(self, lay: chunked_toc.Layout) -> tuple[bytes, bytes]:
        """The compressed TOC and tar-split, with the footer checked against the annotations."""
        size = self.desc.size
        footer = (size - chunked.FRAME_HEADER - chunked.FOOTER_SIZE, size)
        wanted = [(lay.toc.offset, lay.toc.end), (lay.tarsplit.offset, lay.tarsplit.end), footer]
        spans = _coalesce(wanted)
        got: dict[tuple[int, int], bytes] = {}
        for start, end, part in self._request(spans):
            if (start, end) == (0, self.desc.size) and spans != [(0, self.desc.size)]:
                raise NoRanges()
            data = part.read(end - start)
            while len(data) < end - start:
                data += part.read(end - start - len(data))
            for want in wanted:
                if start <= want[0] and want[1] <= end:
                    got[want] = data[want[0] - start:want[1] - start]
        if len(got) != len(wanted):
            raise TOCError("zstd:chunked: the registry did not send the TOC's range")
        chunked_toc.check_footer(got[footer], lay)
        return got[wanted[0]], got[wanted[1]]

    def start(self, files: list[FileRange]) -> None:
        """fetch(files) in a thread; wait(f) hands each content over as it arrives."""
        self.ready = {f.digest: threading.Event() for f in files}
        if files:
            self._thread = threading.Thread(target=self._run, args=(files,), name="partial-fetch", daemon=True)
            self._thread.start()

    def _run(self, files: list[FileRange]) -> None:
        try:
            self.fetch(files)
        except BaseException as err:  # handed to the rebuild, which raises it in the layer's thread
            self.error = err
        finally:
            for event in self.ready.values():
                event.set()

    def wait(self, f: FileRange) -> Path:
        """The verified content of f, once the fetch thread has it; its error if it failed."""
        event = self.ready.get(f.digest)
        if event is not None:
            event.wait()
        if isinstance(self.error, ImagetoolError):
            raise self.error
        if self.error is not None:  # a connection's OSError, say: not to be taken for the unpacker's own
            raise LayerError(f"zstd:chunked: fetching the missing contents: {self.error}") from self.error
        return self.path(f)

    def close(self) -> None:
        """Stop the fetch thread (before its next content) and wait for it: the workdir goes next. An error
        it met is not raised here: if the rebuild needed what failed, the rebuild raised it already."""
        self.stop = True
        if self._thread is not None:
            self._thread.join()

    def fetch(self, files: list[FileRange]) -> None:
        pending = {f.digest: f for f in files}
        by_offset = sorted(pending.values(), key=lambda f: f.offset)
        for single in (False, True):
            todo = [f for f in by_offset if f.digest in pending]
            if not todo:
                return
            spans = [(f.offset, f.end) for f in todo] if single else _coalesce([(f.offset, f.end) for f in todo])
            groups = [[s] for s in spans] if single else [spans[i:i + blob_ranges.MAX_RANGES]
                                                          for i in range(0, len(spans), blob_ranges.MAX_RANGES)]
            for group in groups:
                if self.stop:
                    raise LayerError("zstd:chunked: the fetch was stopped")
                for start, end, part in self._request(group):
                    self._take(start, end, part, [f for f in todo if f.digest in pending], pending)
        if pending:
            raise TOCError("zstd:chunked: the registry did not send the ranges asked for")

    def _take(self, start: int, end: int, part: Any, todo: list[FileRange], pending: dict[Digest, FileRange]) -> None:
        pos = start
        for f in todo:
            if f.offset < pos or f.end > end:
                continue
            if self.stop:
                raise LayerError("zstd:chunked: the fetch was stopped")
            skip = f.offset - pos
            while skip:
                skip -= len(part.read(min(skip, 1 << 20)))
            self._decompress(f, _Limited(part, f.end - f.offset))
            pos = f.end
            del pending[f.digest]
            event = self.ready.get(f.digest)
            if event is not None:
                event.set()

    def _decompress(self, f: FileRange, raw: _Limited) -> None:
        import zstandard

        h = hashlib.sha256()
        total = 0
        dest = self.path(f)
        try:
            with open(dest, "wb") as out:
                reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)  # type: ignore[arg-type]
                while block := reader.read(1 << 20):
                    total += len(block)
                    if total > f.size:
                        break
                    h.update(block)
                    out.write(block)
        except zstandard.ZstdError as err:
            raise TOCError(f"zstd:chunked: the range of {f.name[:80]!r} is not zstd: {err}") from err
        while raw.read(1 << 20):  # what a decompressor left of the range
            pass
        if total != f.size or h.hexdigest() != f.digest.hex:
            raise TOCError(f"zstd:chunked: the content of {f.name[:80]!r} does not match the TOC's digest")
        self.stats.fetched += 1


def pull_layer(src: Any, store: LayoutStore, desc: Descriptor, diff_id: Digest, parent: Digest | None,
               stats: PullStats | None = None) -> Path:
    """Make the snapshot of one zstd:chunked layer; its blob is fetched only in part."""
    stats = stats or PullStats()
    snapshots = SnapshotStore(store)
    existing = snapshots.get(chain_id(parent, diff_id))
    if existing is not None:
        return existing
    cloned = snapshots.from_same_layer(diff_id, parent, desc.digest)  # the same layer on another parent
    if cloned is not None:
        stats.cloned = True
        return cloned
    lay = chunked_toc.layout(dict(desc.annotations), desc.size)
    root = Path(store.root) / "snapshots"
    root.mkdir(parents=True, exist_ok=True)
    lock = store.hold_shared()  # gc (exclusive) must not take the snapshots whose files are reused
    workdir = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=root))
    fetcher = _Fetcher(src.client, src.repo, desc, workdir, stats)
    try:
        toc_bytes, ts_bytes = fetcher.metadata(lay)
        toc = chunked_toc.parse_toc(toc_bytes, lay)
        with chunked_toc.open_tarsplit(ts_bytes, lay, toc, dict(desc.annotations)) as spool:
            index = ContentIndex(snapshots)
            local: dict[Digest, tuple[Path, str]] = {}
            missing: list[FileRange] = []
            for f in toc.files.values():
                stats.files += 1
                if f.digest in local:
                    continue
                hit = index.find(f)
                if hit is not None:
                    local[f.digest] = hit
                    stats.reused += 1
                    stats.reused_paths.append(f.name)
                else:
                    missing.append(f)
            fetcher.start(missing)

            def content(f: FileRange) -> Readable:
                hit = local.get(f.digest)
                fetched = fetcher.wait(f) if hit is None else None  # the fetch's own error, if it failed
                try:
                    if hit is not None:
                        return os.fdopen(_open_under(*hit), "rb")
                    return open(fetched, "rb")  # type: ignore[arg-type]
                except OSError as err:
                    raise LayerError(f"zstd:chunked: the content of {f.name[:80]!r} is gone: {err.strerror}") \
                        from err

            contents = json.dumps({str(f.digest): chunked_toc.clean(f.name) for f in toc.files.values()})
            tar = IteratorStream(chunked_toc.rebuild(spool, toc, content))
            links = {key: str(local[f.digest][0] / local[f.digest][1])
                     for key, f in toc.files.items() if f.digest in local}

            def reuse(entry: Any) -> str | None:
                return links.get(chunked_toc.clean(entry.name))

            return snapshots.create_from(tar, diff_id, parent, desc.digest, {CONTENTS: contents.encode()},
                                         reuse=reuse)
    finally:
        try:
            fetcher.close()
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
            lock.release()


def enabled() -> bool:
    """Partial pulls are on unless IMAGETOOL_PARTIAL_PULLS=0 (as containers-storage's enable_partial_images)."""
    return os.environ.get("IMAGETOOL_PARTIAL_PULLS", "1").strip().lower() not in ("0", "false", "no")


def copy_layer(src: Any, dst: Any, desc: Descriptor, plan: Any, diff_id: Digest | None, parent: Digest | None,
               progress: Any = None) -> Any:
    """copy_blob, or for a zstd:chunked layer going into the local store, its snapshot made by a partial pull."""
    from imagetool.copy.blob import CopiedBlob, copy_blob

    if plan.rewrites or diff_id is None or not enabled() or not possible(src, dst, desc) \
            or dst.try_reuse_blob(desc):
        return copy_blob(src, dst, desc, plan, progress=progress)
    task = progress.blob("blob", desc) if progress else None
    stats = PullStats()
    try:
        pull_layer(src, dst.store, desc, diff_id, parent, stats)
        origins.record(dst.store, desc.digest, src.client.domain, src.repo, src.client.options.tls_verify)
    except (NoRanges, chunked_toc.NotRebuildable) as why:
        if task:
            task.finish("no ranges: whole blob" if isinstance(why, NoRanges) else "no tar-split: whole blob")
        return copy_blob(src, dst, desc, plan, progress=progress)
    if task:
        task.finish("in store on another parent: nothing fetched" if stats.cloned
                    else f"partial: {stats.fetched} of {stats.files} files fetched")
    return CopiedBlob(desc)
