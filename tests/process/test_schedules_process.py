"""The real ``execd run`` process, SIGKILLed at seeded points while paper schedules run and
restarted each time: every parent and every child gets exactly one outcome, each parent
the sum of its children, no child id twice, and the same children and fills as an
uninterrupted replay of the same files; the chain verifies."""

from __future__ import annotations

import asyncio
import random
import signal
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import (
    count_outcomes,
    drop,
    intent,
    lines,
    open_schedules,
    outcomes,
    replay,
    start_daemon,
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
