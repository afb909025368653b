"""POV schedules in the scheduler core, driven by hand over random market volume: no
interval of the market's volume ever sees more than the participation cap of it (at
most one child between two interval ends, no larger than its share of the interval
that ended last), nothing goes before the window or at its end, nothing is filled
above the parent, the parent ends exactly once, and the fold's replay rebuilds what
the sentinel's core did."""

from __future__ import annotations

import itertools
import math
import uuid
from decimal import Decimal
from fractions import Fraction

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from execd.model.messages import Execution, OrderIntent, PovTerms
from execd.model.refusal import Refusal
from execd.reader import volumes as feed
from execd.schedule.core import Done, SchedulerCore
from execd.schedule.intake import schedule_of

LOT = Decimal("0.01")
PARENT = uuid.UUID(int=11)


def _intent(quantity: str, **execution: object) -> OrderIntent:
    return OrderIntent(venue="paper", symbol="BTC/USDT", quantity=Decimal(quantity),
                       source_run="run-1", intent_id=PARENT, side="buy",
                       execution=Execution("pov", **execution))  # type: ignore[arg-type]


def _volumes(bars: list[tuple[int, int, Decimal]]) -> feed.Volumes:
    parsed, problem = feed.parse(msgspec.json.encode({"BTC/USDT": bars}), "volume.json")
    assert problem is None
    return parsed


@st.composite
def markets(draw: st.DrawFn) -> list[tuple[int, int, Decimal]]:
    """Intervals in time order, some with gaps between them, some with no volume."""
    bars, time = [], draw(st.integers(0, 10))
    for _ in range(draw(st.integers(0, 40))):
        time += draw(st.integers(0, 3))  # a gap: no interval reported
        length = draw(st.integers(1, 10))
        volume = draw(st.decimals(0, 5_000, places=2))
        bars.append((time, time + length, volume))
        time += length
    return bars


@given(markets(), st.sampled_from(["1", "12.34", "250", "0.07"]),
       st.decimals("0.01", 1, places=2), st.integers(0, 15), st.integers(1, 400),
       st.lists(st.integers(0, 12), min_size=1, max_size=80),
       st.lists(st.integers(0, 100), min_size=1, max_size=80), st.booleans())
def test_no_interval_sees_more_than_its_cap_and_the_parent_ends_once(
        bars: list[tuple[int, int, Decimal]], quantity: str, participation: Decimal,
        start: int, length: int, steps: list[int], fills: list[int], reload: bool) -> None:
    intent = _intent(quantity, start=start, duration=length, participation=participation)
    record = schedule_of(intent, PARENT, "buy", "paper", 0, msgspec.json.encode(intent), None,
                         volumes=_volumes([]))
    assert not isinstance(record, Refusal) and record is not None
    assert record.pov == PovTerms(start, start + length, participation)
    lot, end = record.lot, start + length
    core = SchedulerCore()
    core.open(record, 1)
    volumes = _volumes(bars)
    core.set_volumes(volumes)
    released: list[tuple[int, int]] = []  # (time, lots)
    log: list[tuple[uuid.UUID, int, int, int]] = []  # (child, lots, time, filled)
    done: list[Done] = []
    now = 0
    for i, step in enumerate(steps):
        now += step
        if reload and i % 3 == 0:
            core.set_volumes(_volumes(bars))  # the file read again: nothing changes
        for release in core.due(now):
            assert release.parent == PARENT
            released.append((now, release.lots))
            filled = release.lots * fills[i % len(fills)] // 100
            log.append((release.child, release.lots, now, filled))
            got = core.settled(release.child, filled, Decimal(100))
            assert got is None or got is core.unrecorded[PARENT]
        if PARENT in core.unrecorded:  # ended: by a settlement, or at its window's end
            done.append(core.unrecorded.pop(PARENT))
    ends = [b[1] for b in bars if b[0] >= start and b[1] < end]
    for time, lots in released:
        assert start <= time < end
        # The interval that ended last by then, inside the window: the child's cap.
        before = [b for b in bars if b[0] >= start and b[1] <= time and b[1] < end]
        assert before, "a child went before any interval of the window ended"
        volume = before[-1][2]
        assert lots * lot <= volume * participation
        assert lots >= 1
    # At most one child between two interval ends.
    for left, right in zip([-1, *ends], [*ends, 2**63], strict=True):
        assert sum(1 for time, _ in released if left <= time < right) <= (0 if left < 0 else 1)
    total = sum(lots for _, lots in released)
    filled = sum(f for *_, f in log)
    assert filled * lot <= Decimal(quantity)
    assert len(done) <= 1
    if done:
        assert done[0].filled == filled and done[0].children == len(released)
        assert PARENT not in core
    if now >= end:
        assert len(done) == 1  # its window is over: it ended, with what filled
    # The fold's replay, from the children's records alone, reaches the same state.
    fold = SchedulerCore(timed=False)
    fold.open(record, 1)
    for child, lots, time, got_filled in log:
        fold.replay(PARENT, child, lots, time)
        fold.settled(child, got_filled, Decimal(100))
    live, rebuilt = core.get(PARENT), fold.get(PARENT)
    if live is not None and rebuilt is not None:
        assert (live.since, live.filled, live.children) == (
            rebuilt.since, rebuilt.filled, rebuilt.children)
    assert total >= filled


def test_a_pov_follows_the_volume_as_it_comes_and_ends_at_its_window() -> None:
    intent = _intent("10.00", start=0, end=100, participation=Decimal("0.1"))
    record = schedule_of(intent, PARENT, "buy", "paper", 0, msgspec.json.encode(intent), None,
                         volumes=_volumes([]))
    assert not isinstance(record, Refusal) and record is not None
    core = SchedulerCore()
    core.open(record, 1)
    assert core.due(50) == []  # no interval has ended: nothing to size a child by
    core.set_volumes(_volumes([(0, 10, Decimal(30)), (10, 20, Decimal(5))]))
    [first] = core.due(50)  # only the latest interval counts: 10% of 5
    assert first.lots * record.lot == Decimal("0.5")
    assert core.settled(first.child, first.lots, Decimal(7)) is None
    assert core.due(60) == []  # that interval is used
    core.set_volumes(_volumes([(0, 10, Decimal(30)), (10, 20, Decimal(5)),
                               (50, 70, Decimal(40))]))
    [second] = core.due(70)
    assert second.lots * record.lot == 4  # 10% of 40
    assert core.settled(second.child, second.lots - 1, Decimal(7)) is None  # one short
    core.set_volumes(_volumes([(0, 10, Decimal(30)), (10, 20, Decimal(5)),
                               (50, 70, Decimal(40)), (70, 100, Decimal(1000))]))
    assert core.due(99) == []  # the interval ending at the window's end is never used
    core.due(100)
    done = core.unrecorded.pop(PARENT)
    assert done.children == 2 and done.filled == first.lots + second.lots - 1
    assert PARENT not in core


def test_a_pov_is_refused_with_its_reason() -> None:
    cases = {
        "EXECUTION_PARAMETER_INVALID": [{"end": 10}, {"end": 10, "participation": Decimal("1.5")},
                                        # Exact caps of these would never end.
                                        {"end": 10, "participation": Decimal("1E-100000000")},
                                        {"end": 10, "participation": Decimal("0." + "3" * 25)},
                                        {"end": 10, "participation": Decimal(0)},
                                        {"end": 10, "participation": Decimal(1), "slices": 2}],
        "EXECUTION_WINDOW_INVALID": [{"participation": Decimal("0.5")},
                                     {"end": 3, "participation": Decimal("0.5"), "start": 5},
                                     {"end": 5, "duration": 2, "participation": Decimal("0.5")}],
    }
    for reason, executions in cases.items():
        for execution in executions:
            intent = _intent("1", **execution)
            got = schedule_of(intent, PARENT, "buy", "paper", 4, b"{}", None,
                              volumes=_volumes([]))
            assert isinstance(got, Refusal) and got.reason == reason, (execution, got)
    intent = _intent("1", end=10, participation=Decimal("0.5"))
    for volumes in (feed.NONE, feed.Volumes({}, every=True)):
        got = schedule_of(intent, PARENT, "buy", "paper", 4, b"{}", None, volumes=volumes)
        assert isinstance(got, Refusal) and got.reason == "EXECUTION_VOLUME_UNUSABLE"


@given(st.lists(st.tuples(st.integers(-5, 50), st.integers(-5, 50),
                          st.decimals(-5, 50, places=1, allow_nan=True)), max_size=8))
def test_a_volume_file_is_usable_only_in_order_and_never_raises(
        rows: list[tuple[int, int, Decimal]]) -> None:
    parsed, problem = feed.parse(msgspec.json.encode({"X": rows}), "volume.json")
    ordered = all(0 <= s < e and v.is_finite() and v >= 0 for s, e, v in rows) and all(
        a[1] <= b[0] for a, b in itertools.pairwise(rows))
    assert (parsed.of("X") is not None) == ordered == (problem is None)
    bars = parsed.of("X")
    if bars is not None and rows:
        # latest() is the last interval ended by then; after() the next to end.
        for now in range(-1, 52):
            got = bars.latest(-1, now, -10, 10**6)
            ended = [(e, v) for _, e, v in rows if e <= now]
            assert got == (ended[-1] if ended else None)
            later = [e for _, e, _ in rows if e > now]
            assert bars.after(now, -10, 10**6) == (later[0] if later else None)


def test_the_cap_is_exact_where_decimal_division_would_round_up() -> None:
    from execd.schedule.plan import pov_share

    # 0.3 of 9.999...9 (28 nines) is just below 3: 2 whole units, never 3.
    volume = Decimal("9." + "9" * 27)
    share = pov_share(10, volume, Decimal("0.3"), Decimal(1))
    assert share == math.floor(Fraction(volume) * Fraction(3, 10)) == 2


def test_a_volume_whose_exact_cap_would_never_end_is_unusable() -> None:
    for volume in ("1E-100000000", "1E+100000000", "0." + "1" * 31, "1E-19"):
        parsed, problem = feed.parse(b'{"X": [[0, 1, "%s"]]}' % volume.encode(), "v.json")
        assert parsed.of("X") is None and problem is not None, volume
    parsed, problem = feed.parse(b'{"X": [[0, 1, "1E-18"], [1, 2, "0"]]}', "v.json")
    assert parsed.of("X") is not None and problem is None
