"""Go durations (time.ParseDuration) as --command-timeout, HEALTHCHECK flags and --retry-delay read them."""

from __future__ import annotations

import pytest

from imagetool.goduration import nanoseconds, seconds

S = 10**9


@pytest.mark.parametrize("text,expected", [
    ("0", 0),
    ("+0", 0),
    ("-0", 0),
    ("5s", 5 * S),
    ("1h2m3.5s", 3723 * S + S // 2),
    ("-1.5h", -5400 * S),
    ("+30s", 30 * S),
    ("300ms", 300_000_000),
    ("1us", 1000),
    ("1µs", 1000),   # the micro sign
    ("1μs", 1000),   # the Greek letter mu
    ("7ns", 7),
    ("1.s", S),      # a number may end in its point
    (".5m", 30 * S),
    ("1m1m", 120 * S),  # units may repeat, in any order
    ("1s1h", 3601 * S),
    ("1.0000000001s", S),  # finer than a nanosecond: dropped
    ("2.01s", 2_010_000_000),  # exact, where a float would give 2009999999
])
def test_go_durations(text: str, expected: int) -> None:
    assert nanoseconds(text) == expected


@pytest.mark.parametrize("text", ["", "1", "1x", ".s", "s", "-", "+", "1.5", "1s ", " 1s", "1 s", "1sm", "1s.",
                                  "--1s", "1e3s", "١s", "0s-1s", "3000000h"])
def test_not_go_durations(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        nanoseconds(text)


def test_the_largest_duration_is_gos() -> None:
    assert nanoseconds("2562047h47m16.854775807s") == 2**63 - 1
    assert nanoseconds("-2562047h47m16.854775808s") == -(2**63)
    with pytest.raises(ValueError):
        nanoseconds("2562047h47m16.854775808s")


def test_without_sign_a_sign_is_refused() -> None:
    assert nanoseconds("1s", signed=False) == S
    for text in ("-1s", "+1s", "-0"):
        with pytest.raises(ValueError):
            nanoseconds(text, signed=False)


def test_a_bare_number_takes_the_bare_unit() -> None:
    assert nanoseconds("2", bare_unit="s") == 2 * S
    assert nanoseconds("0.5", bare_unit="s") == S // 2
    assert nanoseconds(".25", bare_unit="ms") == 250_000
    assert nanoseconds("2ms", bare_unit="s") == 2_000_000  # a unit written wins
    for text in ("", "1e3", "inf", "2 ", "1x"):
        with pytest.raises(ValueError):
            nanoseconds(text, bare_unit="s")


def test_seconds() -> None:
    assert seconds("1m30s") == 90.0
    assert seconds("300ms") == 0.3
    assert seconds("-1.5h") == -5400.0
    assert seconds("2", bare_unit="s", signed=False) == 2.0
