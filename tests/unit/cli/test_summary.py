"""The replay's summary: outcomes by status and reason, counted from the ledger written,
and what ``execd replay`` prints for a person and for a program (not a terminal here)."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog

from execd.cli import summary
from execd.cli.main import main
from execd.service import logs
from tests.helpers import intent, lines, records, replay, write_config


def _inputs(directory: Path) -> list[Path]:
    """Two files with every kind of outcome, bad lines among them, and an empty file."""
    directory.mkdir(parents=True, exist_ok=True)
    first = directory / "a.jsonl"
    first.write_bytes(lines(
        {"kind": "tick", "time": 100}, intent(1), intent(2, action="HOLD", side=None),
        intent(3, venue="nowhere"), intent(4, venue="stubfail"), "not json",
        intent(5, extra="unknown field"), intent(1)))  # intent 1 again: a duplicate
    second = directory / "b.jsonl"
    second.write_bytes(lines(*(intent(n) for n in range(10, 40)), '{"kind":"tick","time":1}'))
    empty = directory / "c.jsonl"
    empty.write_bytes(b"")
    return [first, second, empty]


def _counted(ledger: Path) -> tuple[Counter[tuple[str, str]], int, int]:
    """The ledger counted independently: (status, reason) -> n, records, last seq."""
    every = records(ledger)
    outcomes = Counter((r["body"]["status"], r["body"].get("reason") or "")
                       for r in every if r["kind"] == "outcome")
    return outcomes, len(every), every[-1]["seq"]


def _table_rows(text: str) -> tuple[dict[str, int], dict[tuple[str, str], int], int]:
    """The printed table read back: status -> n, (status, reason) -> n, total."""
    statuses: dict[str, int] = {}
    reasons: dict[tuple[str, str], int] = {}
    rows = text.split("\n")
    assert re.fullmatch(r"outcomes +count", rows[0])
    status = ""
    for row in rows[1:]:
        label, n = re.fullmatch(r"(\s*\S+(?: \S+)*) +([\d,]+)", row).groups()  # type: ignore[union-attr]
        count = int(n.replace(",", ""))
        if label == "total":
            return statuses, reasons, count
        if label.startswith("  "):
            reason = label.strip()
            reasons[(status, "" if reason == summary.NO_REASON else reason)] = count
        else:
            status = label
            statuses[status] = count
    raise AssertionError(f"no total row in {text!r}")


def _expected_rows(outcomes: Counter[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """The reason rows the table shows: every status whose outcomes are not all reasonless."""
    reasonless = {s for s in {s for s, _ in outcomes}
                  if all(r == "" for t, r in outcomes if t == s)}
    return {k: n for k, n in outcomes.items() if k[0] not in reasonless}


def test_the_summary_counts_what_the_ledger_holds(tmp_path: Path) -> None:
    ledger = anyio.run(lambda: replay(tmp_path, _inputs(tmp_path / "in")))
    outcomes, total_records, last_seq = _counted(ledger)
    counted = summary.count(ledger)
    assert counted.outcomes == dict(outcomes)
    assert {s for s, _ in outcomes} == {"FILLED", "SKIPPED", "REJECTED", "FAILED",
                                        "QUARANTINED"}  # the sample has them all
    assert (counted.records, counted.last_seq, counted.total) == (
        total_records, last_seq, sum(outcomes.values()))
    files = [r["body"] for r in records(ledger) if r["kind"] == "input_file"]
    assert (counted.files, counted.lines) == (3, sum(f["lines"] for f in files))
    assert counted.unreadable == 0

    statuses, reasons, total = _table_rows(summary.table(counted, 2.0).split("\nledger:")[0])
    by_status = Counter[str]()
    for (status, _), n in outcomes.items():
        by_status[status] += n
    assert statuses == dict(by_status)
    assert list(statuses) == ["FILLED", "FAILED", "SKIPPED", "REJECTED", "QUARANTINED"]
    assert reasons == _expected_rows(outcomes)
    assert total == sum(outcomes.values())


@pytest.fixture
def logs_put_back() -> Any:
    """The CLI configures structlog to write to this test's captured stdout, which is
    closed after it: later tests get the logging they had before."""
    before = structlog.get_config()
    yield
    structlog.configure(**before)
    logs.set_level("info")  # replay --quiet raised the threshold for the whole process


def _replay_cli(tmp_path: Path, *extra: str, **overrides: Any) -> tuple[Path, int]:
    path = write_config(tmp_path, **overrides)
    ledger = tmp_path / "replayed"
    inputs = [str(p) for p in _inputs(tmp_path / "in")]
    code = main(["replay", "--config", str(path), "--ledger", str(ledger), *extra, *inputs])
    return ledger, code


@pytest.mark.usefixtures("logs_put_back")
def test_for_a_program_the_logs_stay_json_and_end_in_one_summary_event(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger, code = _replay_cli(tmp_path, level="info", outcomes="each")
    assert code == 0
    out, err = capsys.readouterr()
    events = [json.loads(line) for line in out.splitlines()]  # every line is JSON
    outcomes, total_records, last_seq = _counted(ledger)
    # Not a terminal: the config's logs, one line per outcome, as before.
    assert sum(1 for e in events if e["event"] == "outcome") == sum(outcomes.values())
    last = events[-1]
    assert last["event"] == "replay.summary"
    assert last["by_reason"] == {s: {r: n for (t, r), n in sorted(outcomes.items()) if t == s}
                                 for s in last["by_status"]}
    assert (last["outcomes"], last["records"], last["last_seq"]) == (
        sum(outcomes.values()), total_records, last_seq)
    # The table goes to stderr, and no progress line: stderr is not a terminal.
    assert "\r" not in err and "\x1b" not in err
    statuses, reasons, total = _table_rows(err.split("\nledger:")[0])
    assert statuses == last["by_status"]
    assert reasons == _expected_rows(outcomes)
    assert total == sum(outcomes.values())
    assert f"ledger: {total_records:,} records, last seq {last_seq}" in err


@pytest.mark.usefixtures("logs_put_back")
def test_quiet_prints_only_the_summary(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger, code = _replay_cli(tmp_path, "--quiet", level="info", outcomes="each")
    assert code == 0
    out, err = capsys.readouterr()
    assert out == ""  # no info lines, no outcome lines, no summary event
    outcomes, _, _ = _counted(ledger)
    assert err.startswith("outcomes ")
    assert _table_rows(err.split("\nledger:")[0])[2] == sum(outcomes.values())


def test_the_table_for_people() -> None:
    counted = summary.Summary(records=40, last_seq=41, files=1, lines=36, outcomes={
        ("FILLED", ""): 30, ("PARTIALLY_FILLED", "EXECUTION_LOT_ROUNDED"): 2,
        ("PARTIALLY_FILLED", ""): 1, ("REJECTED", "INTENT_DUPLICATE"): 1,
        ("QUARANTINED", "INPUT_MALFORMED_JSON"): 1})
    assert summary.table(counted, 0.5) == "\n".join([
        "outcomes                 count",
        "FILLED                      30",
        "PARTIALLY_FILLED             3",
        "  EXECUTION_LOT_ROUNDED      2",
        "  (no reason)                1",
        "REJECTED                     1",
        "  INTENT_DUPLICATE           1",
        "QUARANTINED                  1",
        "  INPUT_MALFORMED_JSON       1",
        "total                       35",
        "ledger: 40 records, last seq 41",
        "input: 1 file, 36 lines",
        "time: 500ms, 72 lines/s, 70 outcomes/s",
    ])
    assert summary.fields(counted, 0.5)["by_reason"] == {
        "FILLED": {"": 30}, "PARTIALLY_FILLED": {"": 1, "EXECUTION_LOT_ROUNDED": 2},
        "REJECTED": {"INTENT_DUPLICATE": 1}, "QUARANTINED": {"INPUT_MALFORMED_JSON": 1}}
