"""The real ``execd run`` process, SIGKILLed at seeded points while paper schedules run and
restarted each time: every parent and every child gets exactly one outcome, each parent
the sum of its children, no child id twice, and the same children and fills as an
uninterrupted replay of the same files; the chain verifies."""

from __future__ import annotations

import asyncio
import json
import random
import signal
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import (
    count_outcomes,
    ctl,
    drop,
    intent,
    lines,
    open_schedules,
    outcomes,
    replay,
    start_daemon,
    started,
    stop,
    verify,
    wait_for,
    write_config,
)

ALGORITHMS: list[dict[str, Any]] = [
    {"algorithm": "twap", "duration": 40, "slices": 8},
    {"algorithm": "vwap", "duration": 25, "interval": 3},
    {"algorithm": "iceberg", "visible": "0.07"},
    {"algorithm": "twap", "duration": 1000, "slices": 3},  # still open at the end of a file
]


def schedule_files(rng: random.Random, files: int, parents: int) -> list[tuple[str, bytes]]:
    made = []
    for f in range(files):
        rows: list[dict[str, Any]] = []
        for n in range(parents):
            number = f * 1000 + n
            rows.append(intent(number, quantity=f"{rng.randint(1, 300) / 100:.2f}",
                               limit_price="100", order_type="limit",
                               execution=rng.choice(ALGORITHMS)))
            rows.append(intent(100_000 + number, quantity="0.01"))
            if n % 20 == 19:
                rows.append({"kind": "tick", "time": f * 100 + n})
        rows.append({"kind": "tick", "time": f * 100 + 99})
        made.append((f"{f:02d}.jsonl", lines(*rows)))
    made.append(("zz.jsonl", lines({"kind": "tick", "time": 10**6})))  # every window ends
    return made


def summary(ledger: Path) -> dict[str, tuple[str, str]]:
    """id -> (status, filled); one outcome per id, each parent the sum of its children."""
    done = outcomes(ledger)
    count = Counter(o["intent_id"] for o in done)
    assert max(count.values()) == 1, [k for k, v in count.items() if v > 1][:5]
    sums: dict[str, Decimal] = {}
    for o in done:
        if "parent" in o:
            sums[o["parent"]] = sums.get(o["parent"], Decimal(0)) + Decimal(o["filled_quantity"])
    for o in done:
        if "children" in o:
            assert sums.get(o["intent_id"], Decimal(0)) == Decimal(o["filled_quantity"])
            assert Decimal(o["filled_quantity"]) <= Decimal(o["requested_quantity"])
    return {o["intent_id"]: (o["status"], o["filled_quantity"]) for o in done}


def readies(log: Path) -> int:
    return log.read_text().count('"event": "daemon.ready"') if log.exists() else 0


@pytest.mark.parametrize(("seed", "every"), [(1, 0), (2, 40)])
def test_sigkill_inside_schedules_never_sends_a_child_twice_nor_loses_an_outcome(
        tmp_path: Path, seed: int, every: int) -> None:
    rng = random.Random(seed)
    files = schedule_files(rng, files=16, parents=12)
    # The uninterrupted run, in-process: what every restarted run must end with.
    sources = []
    for name, data in files:
        path = tmp_path / "inputs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        sources.append(path)
    expected = summary(asyncio.run(replay(tmp_path / "whole", sources)))
    total = len(expected)

    run = tmp_path / "run"
    config = write_config(run, level="info", items=rng.choice([4, 16]),
                          commit_records=rng.choice([2, 16]), q=rng.choice([1, 4]),
                          segment_bytes=f"{1 << 20}\ncheckpoint_records = {every}")
    inbox, ledger, log = run / "lakehouse" / "inbox", run / "ledger", run / "log"
    waiting = list(files)
    kills = mid_run = open_at_kill = 0
    while kills < 30:
        process = start_daemon(config, log)
        ready = readies(log)
        wait_for(lambda r=ready, proc=process: readies(log) > r or proc.poll() is not None)
        assert process.poll() is None, log.read_text()[-2000:]
        if waiting and rng.random() < 0.7:
            drop(inbox, *waiting.pop(0))
        before = count_outcomes(ledger)
        # Kill a few records into the work, or at once, or once it is idle.
        target = before + rng.choice([0, 1, 3, 10, 40])
        wait_for(lambda t=target: count_outcomes(ledger) >= t or (not any(inbox.iterdir())
                 and not any((run / "lakehouse" / "work").iterdir())), timeout=60)
        process.kill()
        process.wait()
        assert process.returncode == -signal.SIGKILL
        kills += 1
        mid_run += 0 < count_outcomes(ledger) < total
        open_at_kill += bool(open_schedules(ledger))
    process = start_daemon(config, log)
    ready = readies(log)
    wait_for(lambda: readies(log) > ready)
    for name, data in waiting:
        drop(inbox, name, data)
    wait_for(lambda: count_outcomes(ledger) >= total and not any(inbox.iterdir())
             and not any((run / "lakehouse" / "work").iterdir()), timeout=120)
    assert stop(process) == 0
    verify(ledger)
    assert summary(ledger) == expected
    assert mid_run >= 20, "most kills must land while the files are read"
    assert open_at_kill >= 15, "most kills must land while schedules are open"


def test_ctl_schedules_lists_open_schedules_and_cancel_ends_one(tmp_path: Path) -> None:
    """`execd ctl schedules` (and --json) shows each open schedule's progress, a POV's
    wait for the market's volume too; `execd ctl cancel` ends one, whose parent's outcome
    sums what was sent and names who asked."""
    market = tmp_path / "lakehouse" / "market"
    market.mkdir(parents=True)
    (market / "volume.json").write_text('{"BTC/USDT": []}')
    config, process = started(tmp_path)
    try:
        twap = intent(1, quantity="1.00", limit_price="100", order_type="limit",
                      execution={"algorithm": "twap", "start": 0, "end": 100, "slices": 4})
        pov = intent(2, quantity="5", execution={"algorithm": "pov", "end": 500,
                                                 "participation": "0.1"})
        drop(tmp_path / "lakehouse" / "inbox", "a.jsonl",
             lines({"kind": "tick", "time": 0}, twap, pov, {"kind": "tick", "time": 30}))
        ledger = tmp_path / "ledger"
        wait_for(lambda: len(open_schedules(ledger)) == 2 and count_outcomes(ledger) >= 2)
        shown = ctl(config, "schedules")
        assert shown.returncode == 0, shown.stderr
        assert "2 open" in shown.stdout.splitlines()[0]
        row = next(line for line in shown.stdout.splitlines() if twap["intent_id"] in line)
        assert "twap buy" in row and "filled 0.50 of 1.00" in row and "slices 2/4" in row
        assert "next slice at 50" in row
        row = next(line for line in shown.stdout.splitlines() if pov["intent_id"] in line)
        assert "waits for the market's volume, until 500" in row
        listed = json.loads(ctl(config, "schedules", "--json").stdout)
        assert [s["intent_id"] for s in listed] == [twap["intent_id"], pov["intent_id"]]
        ended = ctl(config, "cancel", "--intent", twap["intent_id"], "--reason", "enough",
                    "--actor", "ops")
        assert ended.returncode == 0, ended.stderr
        wait_for(lambda: len(open_schedules(ledger)) == 1)
        [parent] = [o for o in outcomes(ledger) if o["intent_id"] == twap["intent_id"]]
        assert (parent["status"], parent["filled_quantity"], parent["reason"]) == (
            "PARTIALLY_FILLED", "0.50", "SCHEDULE_CANCELLED")
        assert "ops" in parent["detail"] and "enough" in parent["detail"]
        left = ctl(config, "schedules").stdout
        assert twap["intent_id"] not in left and pov["intent_id"] in left
    finally:
        assert stop(process) == 0
    verify(tmp_path / "ledger")
