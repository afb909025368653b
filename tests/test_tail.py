"""``execd ledger tail``: readable lines, JSON lines, filters, follow."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from tests.helpers import EXECD, ROOT, intent, lines, replay


def tail(ledger: Path, *args: str) -> list[str]:
    result = subprocess.run([*EXECD, "ledger", "tail", "--ledger", str(ledger), *args],
                            capture_output=True, text=True, cwd=ROOT, check=True, timeout=60)
    return result.stdout.splitlines()


async def test_tail_renders_and_filters(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(lines({"kind": "tick", "time": 7}, intent(1), intent(2, venue="alpaca"),
                             intent(3, quantity="0"), "{bad"))
    ledger = await replay(tmp_path / "run", [source])
    every = tail(ledger, "-n", "0")
    assert every[0].startswith("#1 t=0 start mode=replay")
    assert every[1] == "#2 t=0 context runs=2 regime=- prices=0 overrides=0 plans=0"
    assert every[2] == "#3 t=7 tick 7"
    assert every[3].startswith("#4 t=7 outcome FILLED paper binance BTC/USDT buy 0.5/0.5")
    assert every[-1] == "#9 t=7 stop input exhausted"
    assert len(tail(ledger)) == 9 and len(tail(ledger, "-n", "2")) == 2
    rejected = tail(ledger, "-n", "0", "--status", "REJECTED")
    assert len(rejected) == 1 and "reason=INTENT_QUANTITY_NOT_POSITIVE" in rejected[0]
    alpaca = tail(ledger, "-n", "0", "--venue", "alpaca", "--json")
    assert [json.loads(x)["body"]["venue"] for x in alpaca] == ["alpaca"]
    one = tail(ledger, "-n", "0", "--intent", "00000000-0000-4000-8000-000000000001")
    assert len(one) == 1 and "FILLED" in one[0]
    assert len(tail(ledger, "-n", "0", "--kind", "tick")) == 1


async def test_tail_follow_prints_new_records(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(lines(intent(1)))
    ledger = await replay(tmp_path / "run", [source])
    process = subprocess.Popen([*EXECD, "ledger", "tail", "-f", "-n", "1", "--ledger",
                                str(ledger)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert process.stdout is not None
        assert "stop" in process.stdout.readline()
        segment = next(ledger.glob("segment-*.jsonl"))
        last = segment.read_bytes().splitlines()[-1]
        time.sleep(0.3)
        with open(segment, "ab") as handle:  # the same record again, as a writer would append
            handle.write(last + b"\n")
        assert "stop" in process.stdout.readline()
    finally:
        process.terminate()
        process.wait(timeout=10)
