"""Times and durations for people (execd.model.times)."""

from __future__ import annotations

import pytest

from execd.model.times import duration, iso_utc


def test_iso_utc_cuts_to_the_digits_asked_for() -> None:
    ns = 1_764_612_853_250_999_999
    assert iso_utc(ns) == "2025-12-01T18:14:13.250Z"
    assert iso_utc(ns, digits=9) == "2025-12-01T18:14:13.250999999Z"
    assert iso_utc(ns, digits=0) == "2025-12-01T18:14:13Z"
    assert iso_utc(0) == "1970-01-01T00:00:00.000Z"


def test_iso_utc_of_an_impossible_time_says_so_instead_of_raising() -> None:
    assert "not a representable time" in iso_utc(10**30)
    with pytest.raises(ValueError, match="digits"):
        iso_utc(0, digits=10)


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0ms"), (0.85, "850ms"), (1, "1s"), (12.5, "12.5s"), (60, "1m"), (312, "5m 12s"),
    (3_600 * 3 + 240, "3h 4m"), (86_400 * 2 + 3_600 * 3, "2d 3h"), (-1, "-"),
    (float("nan"), "-"),
])
def test_duration_is_short(seconds: float, text: str) -> None:
    assert duration(seconds) == text


@pytest.mark.parametrize(("ns", "text"), [
    (-60_000_000_000 * 10**9, "0068-09-03T13:20:00.000Z"),
    (-62_135_596_800 * 10**9, "0001-01-01T00:00:00.000Z"),  # the first representable second
    (253_402_300_799 * 10**9 + 999_999_999, "9999-12-31T23:59:59.999Z"),  # and the last
    (-1, "1969-12-31T23:59:59.999Z"),
])
def test_iso_utc_writes_the_year_in_four_digits_from_0001_to_9999(ns: int, text: str) -> None:
    assert iso_utc(ns) == text


@pytest.mark.parametrize("ns", [-62_135_596_800 * 10**9 - 1, 253_402_300_800 * 10**9,
                                -(10**30)])
def test_iso_utc_outside_0001_to_9999_is_not_a_representable_time(ns: int) -> None:
    assert iso_utc(ns) == f"{ns} ns (not a representable time)"
