"""``execd ledger tail``'s reading, in process (the command itself, as a process:
tests/process/test_tail_process.py)."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import execd.cli.tail
import execd.model.messages as messages
from execd.cli.main import main
from execd.cli.tail import Filters
from execd.ledger.record import LedgerChain
from execd.ledger.segments import SegmentStore, list_segments
from tests.helpers import intent, lines, replay


async def test_records_are_read_in_chunks_that_split_lines_anywhere(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "in.jsonl"
    source.write_bytes(lines(*(intent(n) for n in range(20))))
    ledger = await replay(tmp_path / "run", [source])
    whole = io.BytesIO()
    execd.cli.tail.tail(ledger, whole, last=0, follow=False, as_json=True, filters=Filters())
    for chunk in (1, 7, 100, 4096):
        monkeypatch.setattr(execd.cli.tail, "READ_CHUNK", chunk)
        out = io.BytesIO()
        execd.cli.tail.tail(ledger, out, last=0, follow=False, as_json=True, filters=Filters())
        assert out.getvalue() == whole.getvalue()
    assert whole.getvalue() == b"".join(
        p.read_bytes() for p in sorted(ledger.glob("segment-*.jsonl")))


def stored(directory: Path, records: list[tuple[str, int, bytes]]) -> bytes:
    """A ledger of these (kind, time, body) records, chained and written as the writer
    does; the segments' bytes."""
    store = SegmentStore(directory, 1 << 20)
    store.open()
    chain = LedgerChain()
    store.write_durably(b"".join(chain.append(kind, at, body) for kind, at, body in records))
    store.close()
    return b"".join(p.read_bytes() for p in list_segments(directory))


def shown(capsysbinary: pytest.CaptureFixture[bytes], directory: Path, *args: str) -> bytes:
    """What ``execd ledger tail -n 0`` prints on this ledger, through the real command."""
    assert main(["ledger", "tail", "-n", "0", "--ledger", str(directory), *args]) == 0
    captured = capsysbinary.readouterr()
    assert captured.err == b""
    return captured.out


@pytest.mark.parametrize(("kind", "body", "line"), [
    ("outcome", {"source": 7}, "outcome ? - - - - -/- intent=- src=7"),
    ("outcome", {"source": "ab"}, 'outcome ? - - - - -/- intent=- src="ab"'),
    ("outcome", {"source": {}}, "outcome ? - - - - -/- intent=- src={}"),
    ("outcome", {"status": {"a": [1]}, "detail": 3, "reason": ["x"]},
     'outcome {"a":[1]} - - - - -/- intent=- reason=["x"] detail=3'),
    ("start", {"clock": "logical", "planes": ["binance"]},
     'start mode=null clock=logical planes=["binance"]'),
    ("context", {"runs": 1, "problems": 3},
     "context runs=1 regime=- prices=null overrides=null plans=null problems=3"),
    ("outcome", [1, "two"], 'outcome [1,"two"]'),
    ("outcome", {"plan": {"order_type": "limit", "size": "0.25", "price": "100",
                          "time_in_force": "GTC", "constraints": ["policy:a", "lot_rounding"]}},
     "outcome ? - - - - -/- intent=- plan=limit,0.25@100,GTC,policy:a,lot_rounding"),
    ("outcome", {"plan": {"order_type": "market", "size": "1", "skip_reason": "BELOW_FLOOR"}},
     "outcome ? - - - - -/- intent=- plan=market,1,skipped:BELOW_FLOOR"),
    ("outcome", {"plan": [1]}, "outcome ? - - - - -/- intent=- plan=[1]"),
    ("outcome", {"sizing": {"basis": "allocation", "frac": "0.5", "base": "0.2",
                            "quantity": "0.1", "allocation": "book:B1", "price": "50000"}},
     "outcome ? - - - - -/- intent=- sized=allocation:0.5*0.2=0.1[book:B1@50000]"),
    ("outcome", {"sizing": {"basis": "exit"}}, "outcome ? - - - - -/- intent=- sized=exit:?*?=?"),
    ("outcome", {"sizing": 3}, "outcome ? - - - - -/- intent=- sized=3"),
    ("schedule", {"algorithm": "twap", "slices": [], "sizing": {"basis": "position",
                  "frac": "0.5", "base": "2", "quantity": "1"}},
     "schedule twap - null - - slices=[] lot=null intent=- sized=position:0.5*2=1"),
    ("outcome", {"plan": {"constraints": 5}}, "outcome ? - - - - -/- intent=- plan=?,?,5"),
    ("tick", "late", 'tick "late"'),
    ("trading_state", {"state": None, "reason": {"why": 1}},
     'trading_state null -> null by=null reason={"why":1}'),
    ("schedule", {"algorithm": "twap", "slices": [[1, 2], [5, 2]], "quantity": "4"},
     "schedule twap - 4 - - slices=2 due=1..5 lot=null intent=-"),
    ("schedule", {"algorithm": "twap", "slices": [], "rule": "desk",
                  "execution": {"algorithm": "twap", "duration": 9, "slices": 2}},
     'schedule twap - null - - slices=[] lot=null intent=- rule=desk '
     'default={"algorithm":"twap","duration":9,"slices":2}'),
    ("schedule", {"slices": [[1]]}, "schedule null - null - - slices=[[1]] lot=null intent=-"),
    ("venue_status", {"venue": "binance", "status": "maintenance", "markets": 3,
                      "inactive": 2, "halted": ["BTC/USDT", "ETH/USDT"]},
     "venue_status binance status=maintenance markets=3 inactive=2 halted=BTC/USDT,ETH/USDT"),
    ("holdings", {"venue": "b", "why": "poll", "quiet": True,
                  "total": {"BTC": "1.5", "USDT": "100"}, "free": {}},
     "holdings b poll quiet BTC=1.5 USDT=100"),
    ("holdings", {"venue": "b", "why": "start", "total": {}}, "holdings b start busy (nothing)"),
    ("target", {"portfolio_id": "core", "as_of": 5, "venue": "b", "target_id": "t",
                "supersedes": "s", "legs": [["BTC/USDT", "2", "0.5", "1.5", "l", "sent"], [1]]},
     "target core as_of=5 b target=t supersedes=s BTC/USDT:0.5->2(sent 1.5)"),
    ("target", {"portfolio_id": "core", "as_of": 6, "venue": "b", "target_id": "u",
                "signed": True, "legs": []}, "target core as_of=6 b target=u signed"),
    ("holdings", {"total": [1]}, "holdings null null busy [1]"),
    ("drift", {"state": "drift", "venue": "b", "asset": "BTC", "venue_quantity": "2",
               "ledger_low": "0.5", "ledger_high": "0.5", "baseline": "1",
               "tolerance": "0.01", "action": "reduce", "holdings": 9},
     "drift drift b BTC venue=2 ledger=0.5..0.5 baseline=1 tolerance=0.01 action=reduce "
     "holdings=9"),
    ("venue_status", {"venue": "b", "status": "ok", "markets": 1, "resumed": 7},
     "venue_status b status=ok markets=1 inactive=0 resumed=7"),
])
def test_a_body_of_a_shape_no_writer_writes_prints_as_its_json_and_tail_goes_on(
        tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes], kind: str, body: Any,
        line: str) -> None:
    """Tail reads ledgers it has not verified: a field of the wrong shape is shown as its
    JSON, and the records after it still print."""
    stored(tmp_path, [(kind, 3, msgspec.json.encode(body)), ("stop", 4, b'{"reason":"done"}')])
    assert shown(capsysbinary, tmp_path).decode().splitlines() == [
        f"#1 t=3 {line}", "#2 t=4 stop done"]


# Each record kind's body, so the fuzz below fills the fields describe reads.
BODIES: dict[str, type[msgspec.Struct]] = {
    "start": messages.StartRecord, "stop": messages.StopRecord,
    "outcome": messages.ExecutionOutcome, "tick": messages.TickRecord,
    "input_file": messages.InputFileRecord, "context": messages.ContextRecord,
    "trading_state": messages.TradingStateRecord, "safety_sell": messages.SafetySellRecord,
    "override": messages.OverrideRecord, "order": messages.OrderRecord,
    "order_attempt": messages.SendAttemptRecord, "order_cancel": messages.CancelRecord,
    "config": messages.ConfigRecord, "checkpoint": messages.CheckpointRecord,
    "schedule": messages.ScheduleRecord, "slippage": messages.SlippageRecord,
    "venue_status": messages.VenueStatusRecord, "holdings": messages.HoldingsRecord,
    "drift": messages.DriftRecord, "target": messages.TargetRecord,
    "resume": messages.ResumeRecord, "route": messages.RouteRecord}
TEXT = st.text(max_size=6)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False,
                                                        allow_infinity=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6)


def _record(kind: str) -> st.SearchStrategy[tuple[str, int, Any]]:
    fields = st.sampled_from(BODIES[kind].__struct_fields__)
    body = st.dictionaries(fields, JSON, max_size=8) | JSON
    return st.tuples(st.just(kind), st.integers(-(2**63), 2**63 - 1), body)


RECORDS = st.lists(st.sampled_from(execd.cli.tail.KINDS).flatmap(_record), min_size=1,
                   max_size=6)


def test_the_fuzz_knows_every_record_kind() -> None:
    assert sorted(BODIES) == sorted(execd.cli.tail.KINDS)


def rendered(directory: Path, *, as_json: bool = False, encoding: str = "utf-8") -> bytes:
    """What tail writes for every record of the ledger, called directly (the fuzz below
    runs it thousands of times; building the command line each time would cost more)."""
    out = io.BytesIO()
    execd.cli.tail.tail(directory, out, last=0, follow=False, as_json=as_json,
                        filters=Filters(), encoding=encoding)
    return out.getvalue()


@settings(max_examples=200, deadline=None)
@given(RECORDS)
def test_every_record_prints_whatever_its_body_holds(records: list[tuple[str, int, Any]]) -> None:
    """One printable line per record, in order, for any body over every kind (start
    records with ``clock = "wall"`` included, so times go through iso_utc), in UTF-8
    and in ASCII; --json gives back the stored bytes."""
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        raw = stored(directory, [(k, at, msgspec.json.encode(b)) for k, at, b in records])
        for encoding in ("utf-8", "ascii"):
            text = rendered(directory, encoding=encoding).decode(encoding).split("\n")
            assert text.pop() == ""
            assert [line.split(" ", 1)[0] for line in text] == \
                [f"#{n}" for n in range(1, len(records) + 1)]
            assert [line.split(" ", 3)[2] for line in text] == [k for k, _, _ in records]
            assert all(line.isprintable() for line in text)
        assert rendered(directory, as_json=True) == raw


def test_what_a_record_holds_cannot_drive_the_terminal(
        tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    """Control characters (an escape sequence, a carriage return) and bidirectional
    overrides in a body are shown as escapes, never written to the terminal."""
    stored(tmp_path, [("stop", 1, msgspec.json.encode({"reason": "\x1b[2J\rok\u202e\x9b"}))])
    assert shown(capsysbinary, tmp_path) == b"#1 t=1 stop \\u001b[2J\\u000dok\\u202e\\u009b\n"


def test_json_writes_every_stored_line_exactly_and_people_see_which_are_unreadable(
        tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    """A line that is not UTF-8, not a record, or nested deeper than any record, is
    written by --json as it is stored; for people it is one "(unreadable line ...)"
    line, and the records after it print."""
    good = stored(tmp_path, [("stop", 1, b'{"reason":"caf\xc3\xa9"}')])
    segment = list_segments(tmp_path)[0]
    deep = b"[" * 200 + b"]" * 200
    raw = good + b'{"v":1,"seq":2,"body":"\xff\xfe"}\n' + deep + b"\n" + good
    segment.write_bytes(raw)
    assert shown(capsysbinary, tmp_path, "--json") == raw
    assert shown(capsysbinary, tmp_path).decode().splitlines() == [
        "#1 t=1 stop café", "(unreadable line: b'{\"v\":1,\"seq\":2,\"body\":\"\\xff\\xfe\"}')",
        f"(unreadable line: {deep[:80]!r})", "#1 t=1 stop café"]
