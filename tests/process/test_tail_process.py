"""``execd ledger tail`` as a process: readable lines, JSON lines, filters, follow."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

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


def run_tail(ledger: Path | str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EXECD, "ledger", "tail", "--ledger", str(ledger), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)


async def test_a_bare_cr_inside_a_record_does_not_split_it(tmp_path: Path) -> None:
    """The intent's own bytes, CR (JSON whitespace) included, are in its records."""
    source = tmp_path / "in.jsonl"
    line = json.dumps(intent(1, context={"note": "x"})).replace('"context": {', '"context":\r{')
    source.write_bytes(lines(line, intent(2)))
    ledger = await replay(tmp_path / "run", [source])
    assert b"\r" in b"".join(p.read_bytes() for p in ledger.glob("segment-*.jsonl"))
    every = tail(ledger, "-n", "0")
    assert not [x for x in every if "unreadable" in x]
    assert every[2].startswith("#3 t=0 outcome FILLED") and every[2].endswith(
        "src=in.jsonl:1 plan=market,0.5")
    # --json prints the stored lines as they are, CR included (so read bytes, not text).
    raw = subprocess.run([*EXECD, "ledger", "tail", "--ledger", str(ledger), "-n", "0",
                          "--json"], capture_output=True, cwd=ROOT, check=True, timeout=60)
    assert raw.stdout == b"".join(p.read_bytes() for p in sorted(ledger.glob("segment-*")))
    assert [json.loads(x)["seq"] for x in raw.stdout.split(b"\n")[:-1]] == [1, 2, 3, 4, 5, 6]
    assert len(every) == 6


async def test_statuses_in_any_case_and_intent_id_prefixes(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(lines(intent(1), intent(2, quantity="0"), intent(11)))
    ledger = await replay(tmp_path / "run", [source])
    rejected = tail(ledger, "-n", "0", "--status", "rejected")
    assert len(rejected) == 1 and "reason=INTENT_QUANTITY_NOT_POSITIVE" in rejected[0]
    assert tail(ledger, "-n", "0", "--status", "Rejected") == rejected
    prefix = tail(ledger, "-n", "0", "--kind", "outcome", "--intent",
                  "00000000-0000-4000-8000-00000000000")
    assert [x.split("intent=")[1][:36][-2:] for x in prefix] == ["01", "02"]
    assert len(tail(ledger, "-n", "0", "--intent", "00000000-0000-4000-8000-000000000011")) == 1
    assert len(tail(ledger, "-n", "0", "--kind", "outcome", "--intent", "00000000")) == 3
    assert tail(ledger, "-n", "0", "--intent", "00000000-0000-4000-8000-00000000001") == tail(
        ledger, "-n", "0", "--intent", "00000000-0000-4000-8000-000000000011")


@pytest.mark.parametrize(("args", "line"), [
    (["--status", "rejectd"], "--status: expected one of FILLED, PARTIALLY_FILLED, FAILED, "
     "SKIPPED, REJECTED, QUARANTINED (any case), found 'rejectd'"),
    (["--kind", "outcomes"], "--kind: expected one of start, stop, outcome, "),
    (["--intent", "not-an-id"], "--intent: expected an intent id or its first characters"),
    (["-n", "-3"], "-n: expected a number of records >= 0 (0: all), found -3"),
])
async def test_a_filter_that_matches_nothing_valid_exits_2(tmp_path: Path, args: list[str],
                                                           line: str) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(lines(intent(1)))
    ledger = await replay(tmp_path / "run", [source])
    result = run_tail(ledger, *args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith(line)


def test_a_ledger_directory_that_does_not_exist_exits_1(tmp_path: Path) -> None:
    for path in (tmp_path / "nope", tmp_path / "file"):
        if path.name == "file":
            path.write_text("")
        result = run_tail(path)
        assert (result.returncode, result.stdout) == (1, "")
        assert result.stderr == f"{path}: no ledger here\n"


async def test_json_is_the_stored_bytes_and_no_encoding_ends_the_command(
        tmp_path: Path) -> None:
    """--json writes each stored line exactly, one that is not UTF-8 included, whatever
    the output's encoding; for people, under an encoding that cannot show a record's
    characters (PYTHONIOENCODING=ascii), they are replaced and every record prints."""
    source = tmp_path / "café.jsonl"
    source.write_bytes(lines(intent(1, symbol="ÉTH/USDT"), intent(2, venue="bínance")))
    size = source.stat().st_size
    ledger = await replay(tmp_path / "run", [source])
    segment = next(ledger.glob("segment-*.jsonl"))
    stored = segment.read_bytes().replace(b"\xc3\x89TH/USDT", b"\xffTH/USDT")  # not UTF-8
    segment.write_bytes(stored)
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    raw = subprocess.run([*EXECD, "ledger", "tail", "-n", "0", "--json", "--ledger",
                          str(ledger)], capture_output=True, cwd=ROOT, env=env, timeout=60)
    assert (raw.returncode, raw.stderr, raw.stdout) == (0, b"", stored)
    shown = subprocess.run([*EXECD, "ledger", "tail", "-n", "0", "--ledger", str(ledger)],
                           capture_output=True, cwd=ROOT, env=env, timeout=60)
    assert (shown.returncode, shown.stderr) == (0, b"")
    every = shown.stdout.decode("ascii").splitlines()
    assert len(every) == len(stored.splitlines()) == 6
    assert every[2].startswith("(unreadable line: b'")
    assert every[3].startswith("#4 t=0 outcome REJECTED - b?nance BTC/USDT buy 0/0.5 ")
    assert every[4] == f"#5 t=0 input_file caf?.jsonl lines=2 size={size} -> archive"
