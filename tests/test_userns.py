"""userns: work done in a forked child inside a new user namespace comes back as values, errors and bytes.

Run as root with a namespace that maps root alone (what any process may make), so the
child path is exercised without subordinate ranges; the rootless user's real mapping is
covered end to end by tests/runtime/test_rootless_ids.py.
"""

from __future__ import annotations

import io
import os

import pytest

from imagetool import userns
from imagetool.errors import DigestMismatch, ImagetoolError, LayerError


def _inside() -> tuple[bool, bool, str]:
    with open("/proc/self/uid_map") as f:
        return userns.initial(), userns.privileged(), f.read().split()[2]


def test_the_child_runs_in_a_new_user_namespace() -> None:
    assert userns.initial()
    initial, privileged, count = userns.Child(userns.own_ids(), _inside, ()).wait()
    assert (initial, privileged, count) == (False, False, "1")


def _fail(error: BaseException) -> None:
    raise error


def test_errors_come_back_typed_or_as_their_message() -> None:
    with pytest.raises(LayerError, match="bad layer"):
        userns.Child(userns.own_ids(), _fail, (LayerError("bad layer"),)).wait()
    # an error that pickles but cannot be rebuilt from its args still says what happened
    with pytest.raises(ImagetoolError, match="digest mismatch: expected a, got b"):
        userns.Child(userns.own_ids(), _fail, (DigestMismatch("a", "b"),)).wait()
    with pytest.raises(ImagetoolError, match="returned nothing"):
        userns.Child(userns.own_ids(), lambda: (lambda: None), ()).wait()  # an unpicklable result


class _Writes(io.BytesIO):
    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def write(self, data) -> int:  # type: ignore[no-untyped-def,override]
        self.sizes.append(len(data))
        return super().write(data)


def test_produce_keeps_every_write_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    """gzip output depends on how its input is cut: the parent must see the child's writes unchanged."""
    monkeypatch.setattr(userns, "_host_mapping", userns.own_ids)
    pieces = [b"a" * 7, b"b" * 100_000, b"c", b"d" * (3 << 20)]
    out = _Writes()

    def writer(sink) -> None:  # type: ignore[no-untyped-def]
        assert not userns.initial()
        for piece in pieces:
            sink.write(piece)

    userns.produce(writer, out)
    assert out.sizes == [len(p) for p in pieces] and out.getvalue() == b"".join(pieces)


def test_consume_reads_the_whole_stream_and_reports_the_childs_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(userns, "_host_mapping", userns.own_ids)
    data = os.urandom(5 << 20)
    assert userns.consume(lambda r: len(r.read()), io.BytesIO(data)) == len(data)

    def reject(reader) -> None:  # type: ignore[no-untyped-def]
        reader.read(10)
        raise LayerError("stopped early")

    with pytest.raises(LayerError, match="stopped early"):
        userns.consume(reject, io.BytesIO(data))


def _open_in_child(fds: tuple[int, ...]) -> list[bool]:
    opened = []
    for fd in fds:
        try:
            os.fstat(fd)
            opened.append(True)
        except OSError:
            opened.append(False)
    return opened


def test_the_child_holds_no_pipe_of_another_thread(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A pipe made for another child must not stay open here, or its reader waits for this child to exit."""
    other_r, other_w = os.pipe()
    with open(tmp_path / "file", "w") as regular:
        try:
            opened = userns.Child(userns.own_ids(), _open_in_child, ((other_r, other_w, regular.fileno()),)).wait()
        finally:
            os.close(other_r)
            os.close(other_w)
    assert opened == [False, False, True]


def test_streams_in_threads_side_by_side_all_end(monkeypatch: pytest.MonkeyPatch) -> None:
    """Several produce/consume children at once, as parallel stages and copies start them: each sees its EOF."""
    import threading

    monkeypatch.setattr(userns, "_host_mapping", userns.own_ids)
    data = os.urandom(1 << 20)
    results: list[int] = []
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            if i % 2:
                results.append(userns.consume(lambda r: len(r.read()), io.BytesIO(data)))
            else:
                out = io.BytesIO()
                userns.produce(lambda sink: sink.write(data), out)
                results.append(len(out.getvalue()))
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and not any(t.is_alive() for t in threads)
    assert results == [len(data)] * 8
