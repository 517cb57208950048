"""describe(): the one line the CLI prints, and the causes kept behind it."""

from __future__ import annotations

import json

import pytest

from imagetool.errors import BuildError, LayerError, describe
from imagetool.layer.tarreader import parse_pax


def test_our_own_cause_stays_out_of_the_line_and_in_the_chain() -> None:
    with pytest.raises(LayerError) as info:
        parse_pax(b"xx path=a\n")
    assert describe(info.value) == "corrupt PAX header: bad record length"
    assert isinstance(info.value.__cause__, ValueError)  # int()'s own complaint, for --debug and callers


def test_a_cited_cause_goes_on_the_line() -> None:
    with pytest.raises(BuildError) as info:
        try:
            parse_pax(b"xx path=a\n")
        except LayerError as err:
            raise BuildError("unpacking failed").citing_cause() from err
    assert describe(info.value) == "unpacking failed: corrupt PAX header: bad record length"


def test_another_librarys_cause_goes_on_the_line() -> None:
    with pytest.raises(RuntimeError) as info:
        try:
            json.loads("{")
        except ValueError as err:
            raise RuntimeError("the library's summary") from err  # raised outside imagetool
    assert describe(info.value).startswith("the library's summary: Expecting property name")
