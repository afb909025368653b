"""The reader core: lines in, items out, whatever the chunking; bad lines quarantined."""

from __future__ import annotations

import inspect
import json
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from execd.model import reasons
from execd.model.clock import LogicalClock, WallClock
from execd.model.errors import ClockRegression
from execd.model.json_depth import MAX_JSON_DEPTH
from execd.model.messages import Entry, ExecutionOutcome, IntentIn, TickRecord, encode
from execd.reader.core import ReaderCore
from tests.helpers import intent, lines


def read(data: bytes, cuts: list[int] | None = None, max_line: int = 1 << 20,
         clock: Any = None, name: str = "f.jsonl", whole: bool = False) -> list[Any]:
    core = ReaderCore(clock or LogicalClock(), 0, max_line)
    core.start_file(name, whole=whole)
    items: list[Any] = []
    position = 0
    for cut in sorted(cuts or []):
        items += core.feed(data[position:cut])
        position = cut
    items += core.feed(data[position:])
    items += core.finish_file(len(data), "digest")
    return items


def signature(items: list[Any]) -> list[bytes]:
    out = []
    for item in items:
        if isinstance(item, IntentIn):
            out.append(encode([item.seq, item.time, item.source, item.intent]) + item.raw)
        else:
            out.append(encode([item.seq, item.kind, item.time, item.body]))
    return out


def outcome(item: Any) -> ExecutionOutcome:
    assert isinstance(item, Entry) and isinstance(item.body, ExecutionOutcome)
    return item.body


SAMPLE = lines(
    {"kind": "tick", "time": 10}, intent(1), "", "   ", "{oops", intent(2, quantity="1.25"),
    {"kind": "tick", "time": 5}, b"\xff\xfe not utf8", intent(3, extra=1),
    {"kind": "intent"}, intent(4, side="sideways"), '{"kind":"tick","time":20}',
) + b'{"kind":"intent","venue":"binance"'  # unterminated last line


@settings(max_examples=200)
@given(st.lists(st.integers(0, len(SAMPLE)), max_size=12))
def test_items_do_not_depend_on_chunk_boundaries(cuts: list[int]) -> None:
    assert signature(read(SAMPLE, cuts)) == signature(read(SAMPLE))


def test_every_non_blank_line_gets_exactly_one_item() -> None:
    """No non-blank line is ever skipped or read twice: each gets exactly one item, in line order.
    """
    items = read(SAMPLE)
    assert [i.seq for i in items] == list(range(len(items)))
    by_line = [i.source.line if isinstance(i, IntentIn) else
               (i.body.source.line if i.kind != "input_file" else None) for i in items]
    assert by_line[:-1] == [1, 2, 5, 6, 7, 8, 9, 10, 11, 12, 13]
    assert items[-1].kind == "input_file" and items[-1].body.lines == 13


def test_each_kind_of_bad_line_has_its_reason() -> None:
    """A bad line is never dropped or fatal: each becomes a quarantine outcome with its own reason.
    """
    items = read(SAMPLE)
    reason = {i.body.source.line: i.body.reason for i in items
              if isinstance(i, Entry) and i.kind == "outcome"}
    assert reason == {
        5: reasons.INPUT_MALFORMED_JSON,
        7: reasons.INPUT_CLOCK_REGRESSION,
        8: reasons.INPUT_INVALID_UTF8,
        9: reasons.INPUT_SCHEMA_VIOLATION,
        10: reasons.INPUT_SCHEMA_VIOLATION,
        11: reasons.INPUT_SCHEMA_VIOLATION,
        13: reasons.INPUT_MALFORMED_JSON,
    }
    details = {i.body.source.line: i.body.detail for i in items
               if isinstance(i, Entry) and i.kind == "outcome"}
    assert "unknown field `extra`" in details[9]
    assert "missing required field" in details[10]
    assert "`$.side`" in details[11]
    assert "tick 5 is before the current time 10" in details[7]


def test_ticks_stamp_the_items_after_them() -> None:
    items = read(SAMPLE)
    times = [(i.source.line, i.time) for i in items if isinstance(i, IntentIn)]
    assert times == [(2, 10), (6, 10)]
    ticks = [i.body for i in items if isinstance(i, Entry) and i.kind == "tick"]
    assert [t.time for t in ticks if isinstance(t, TickRecord)] == [10, 20]


def test_offsets_let_a_restart_resume_exactly() -> None:
    """A restart from a recorded offset never skips or repeats a line."""
    data = lines(intent(1), intent(2), intent(3))
    items = read(data)
    second_end = items[1].source.end
    core = ReaderCore(LogicalClock(), 100, 1 << 20)
    core.start_file("f.jsonl", offset=second_end, line=2)
    rest = core.feed(data[second_end:]) + core.finish_file(len(data), "d")
    assert isinstance(rest[0], IntentIn)
    assert rest[0].source.line == 3 and rest[0].intent.intent_id == items[2].intent.intent_id
    assert rest[0].seq == 100


@given(st.lists(st.integers(0, 3000), max_size=6))
def test_an_over_long_line_is_quarantined_whatever_the_chunking(cuts: list[int]) -> None:
    data = lines(intent(1), "x" * 2500, intent(2))
    items = read(data, cuts, max_line=1000)
    long = outcome(items[1])
    assert long.reason == reasons.INPUT_LINE_TOO_LONG
    assert long.detail == "line is 2500 bytes; input.max_line_bytes is 1000"
    assert isinstance(items[2], IntentIn) and items[2].source.line == 3


def test_a_ten_megabyte_line_is_one_quarantine() -> None:
    data = lines(intent(1), b'{"kind":"intent","pad":"' + b"a" * (10 << 20) + b'"}', intent(2))
    cuts = list(range(0, len(data), 1 << 20))
    items = read(data, cuts)
    assert outcome(items[1]).reason == reasons.INPUT_LINE_TOO_LONG
    assert isinstance(items[2], IntentIn)


def test_an_empty_file_is_an_outcome() -> None:
    for data in (b"", b"\n\n  \n"):
        items = read(data)
        assert outcome(items[0]).reason == reasons.INPUT_EMPTY_FILE
        assert outcome(items[0]).status == "QUARANTINED"
        assert items[1].kind == "input_file"


def test_ticks_under_the_wall_clock_are_quarantined() -> None:
    items = read(lines({"kind": "tick", "time": 5}), clock=WallClock())
    assert outcome(items[0]).reason == reasons.INPUT_TICK_UNDER_WALL_CLOCK


def test_blank_lines_get_no_outcome_but_keep_their_numbers() -> None:
    # Only JSON whitespace (space, tab, CR) makes a line blank: it is not a record.
    # Anything else, a form feed or a no-break space included, is read and judged.
    data = lines("", intent(1), "  \t ", "\r", intent(2), "\x0c", "\u00a0", intent(3)) + b"\n \n"
    items = read(data)
    intents = [(i.source.line, int(str(i.intent.intent_id)[-12:])) for i in items
               if isinstance(i, IntentIn)]
    assert intents == [(2, 1), (5, 2), (8, 3)]
    quarantined = {outcome(i).source.line: outcome(i).reason for i in items
                   if isinstance(i, Entry) and i.kind == "outcome"}
    assert quarantined == {6: reasons.INPUT_MALFORMED_JSON, 7: reasons.INPUT_MALFORMED_JSON}
    assert items[-1].kind == "input_file" and items[-1].body.lines == 10


def test_crlf_lines_are_read_like_lf_lines() -> None:
    data = lines(intent(1), intent(2)).replace(b"\n", b"\r\n")
    items = read(data)
    assert [i.source.line for i in items if isinstance(i, IntentIn)] == [1, 2]


def nested(levels: int, close: bool = True) -> str:
    """A context object nested ``levels`` deep inside an intent line (its object is level 1)."""
    inner = levels - 2  # the line's object and the context object
    body = '{"a":' * inner + "1" + ("}" * inner if close else "")
    return json.dumps(intent(1))[:-1] + ', "context": {"k": ' + body + ("}}" if close else "")


DEEP = [
    nested(MAX_JSON_DEPTH),  # the limit itself is read
    nested(MAX_JSON_DEPTH + 1),
    nested(1_000),
    nested(50_000),
    nested(5_000, close=False),  # and unterminated
    '{"x":' + "[" * 3_000 + "]" * 3_000 + ', "kind": "intent"}',  # before the tag
    '{"kind":"tick","time":0,"x":' + "[" * 3_000 + "]" * 3_000 + "}",
    '{"kind":"intent","context":{"a":' + "[" * 3_000 + "1,}",  # deep and malformed
    json.dumps(intent(2, context={"text": "[" * 5_000})),  # brackets in a string
]


def deep_reasons(data: bytes) -> list[str]:
    return [outcome(i).reason or "" if isinstance(i, Entry) else "intent"
            for i in read(data)[:-1]]


def test_deep_json_is_quarantined_not_raised() -> None:
    """Deeply nested JSON never raises out of the reader: the line is quarantined INPUT_TOO_DEEP."""
    got = deep_reasons(lines(*DEEP))
    assert got == ["intent"] + [reasons.INPUT_TOO_DEEP] * 7 + ["intent"]
    detail = outcome(read(lines(DEEP[2]))[0]).detail
    assert detail == "arrays and objects nest more than 64 levels deep; the line is not read"


def test_deep_json_is_judged_the_same_under_any_call_stack() -> None:
    # The decoders recurse per level and fail near the recursion limit, so how deep
    # the caller already is must not change a line's fate: here the reader runs with
    # all but 150 frames of the stack used up.
    data = lines(*DEEP, *(nested(n) for n in (100, 500, 900, 960, 990)))
    expected = signature(read(data))

    def at_depth(n: int) -> list[bytes]:
        if n > 0:
            return at_depth(n - 1)
        return signature(read(data))

    frames = len(inspect.stack())
    assert at_depth(sys.getrecursionlimit() - frames - 150) == expected


def test_tick_times_stay_in_the_ledger_s_integer_range() -> None:
    huge = "1" + "0" * 4299  # 4,300 digits: the most Python will print
    items = read(lines({"kind": "tick", "time": 2**63 - 1}, f'{{"kind":"tick","time":{2**63}}}',
                       f'{{"kind":"tick","time":{huge}}}', '{"kind":"tick","time":-1}'),
                 clock=LogicalClock())
    ticks = [i.body.time for i in items if isinstance(i, Entry) and i.kind == "tick"]
    assert ticks == [2**63 - 1]
    refused = [outcome(i) for i in items if isinstance(i, Entry) and i.kind == "outcome"]
    assert [(o.reason, o.source.line if o.source else 0) for o in refused] == [
        (reasons.INPUT_SCHEMA_VIOLATION, 2), (reasons.INPUT_SCHEMA_VIOLATION, 3),
        (reasons.INPUT_SCHEMA_VIOLATION, 4)]
    assert all("`$.time`" in (o.detail or "") for o in refused)
    assert "<= 9223372036854775807" in (refused[0].detail or "")


def test_an_operator_tick_out_of_range_moves_nothing() -> None:
    core = ReaderCore(LogicalClock(), 0, 1 << 20)
    with pytest.raises(ClockRegression, match=r"outside 0 \.\. 9223372036854775807"):
        core.operator_tick(2**63, "ops")
    assert core.clock.now() == 0 and core.next_seq == 0
    assert core.operator_tick(2**63 - 1, "ops").time == 2**63 - 1


# ---------------------------------------------------------------- target files

TARGET_FILE = json.dumps({
    "portfolio_id": "core", "source_run": "run-1", "as_of": 7, "venue": "paper",
    "targets": [{"symbol": "BTC/USDT", "quantity": "0.5"},
                {"symbol": "ETH/USDT", "weight": "0.25", "price": "2000"}],
    "capital": "10000"}, indent=2).encode() + b"\n"


def read_target_file(data: bytes, cuts: list[int] | None = None,
                     max_line: int = 1 << 20) -> list[Any]:
    return read(data, cuts, max_line, name="t.json.target-1", whole=True)


@settings(max_examples=100)
@given(st.lists(st.integers(0, len(TARGET_FILE)), max_size=8))
def test_a_target_file_is_one_record_over_its_lines_whatever_the_chunking(
        cuts: list[int]) -> None:
    """A pretty-printed target without ``kind`` is one target, at the file's end offset."""
    items = read_target_file(TARGET_FILE, cuts)
    assert [type(i).__name__ for i in items] == ["TargetIn", "Entry"]
    target = items[0]
    assert type(target.target).__name__ == "WireTarget"
    assert target.target.portfolio_id == "core" and len(target.target.targets) == 2
    assert (target.source.file, target.source.line, target.source.end) == (
        "t.json.target-1", 1, len(TARGET_FILE))
    assert items[1].kind == "input_file" and items[1].body.lines == 1
    assert signature(items[1:]) == signature(read_target_file(TARGET_FILE)[1:])


def test_a_target_file_may_hold_a_drift_target_and_nothing_else() -> None:
    drift = json.dumps({"kind": "drift_target", "portfolio_id": "core", "source_run": "d",
                        "as_of": 9, "venue": "paper",
                        "orders": [{"symbol": "BTC/USDT", "target_quantity": "1"}]},
                       indent=1).encode()
    [item, _] = read_target_file(drift)
    assert type(item.target).__name__ == "WireDriftTarget"
    # An intent or a tick in a target file is refused, never executed or applied.
    for other, kind in ((intent(1), "'intent'"), ({"kind": "tick", "time": 5}, "'tick'"),
                        ({"kind": 5}, "5"), ({"kind": []}, "[]"), ({"kind": {}}, "{}")):
        [refused, record] = read_target_file(json.dumps(other).encode())
        body = outcome(refused)
        assert body.reason == reasons.INPUT_SCHEMA_VIOLATION
        assert body.detail == ("a target file holds one target (kind target or drift_target),"
                               f" not {kind}")
        assert record.body.lines == 1


def test_each_kind_of_bad_target_file_has_its_reason() -> None:
    cases = {
        b"{}": reasons.INPUT_SCHEMA_VIOLATION,  # kind target, required fields missing
        b"{ \n }\n": reasons.INPUT_SCHEMA_VIOLATION,
        b'{"portfolio_id": "core",\n  oops': reasons.INPUT_MALFORMED_JSON,
        b"[1, 2]": reasons.INPUT_SCHEMA_VIOLATION,
        b"\xff\xfe": reasons.INPUT_INVALID_UTF8,
        TARGET_FILE.replace(b'"capital"', b'"capitol"'): reasons.INPUT_SCHEMA_VIOLATION,
        b"[" * (MAX_JSON_DEPTH + 1): reasons.INPUT_TOO_DEEP,
    }
    for data, reason in cases.items():
        [refused, record] = read_target_file(data)
        assert outcome(refused).reason == reason, (data, outcome(refused))
        assert record.kind == "input_file"
    [empty, _] = read_target_file(b"\n  \n")
    assert outcome(empty).reason == reasons.INPUT_EMPTY_FILE
    [long, _] = read_target_file(TARGET_FILE, [100, 200], max_line=256)
    assert outcome(long).reason == reasons.INPUT_LINE_TOO_LONG
    assert outcome(long).detail == (f"the target file is {len(TARGET_FILE)} bytes; "
                                    "input.max_line_bytes is 256")


def test_a_target_file_keeps_its_object_as_written_so_its_signature_holds() -> None:
    """The kind the reader adds is not part of what the producer signed."""
    from execd.sentinel.signatures import signed_line, verify

    key = b"s" * 32
    data = signed_line(key, TARGET_FILE.strip(), whole=True)
    assert b"\n" in data and b'"kind"' not in data  # indented, no kind: as written
    [item, _] = read_target_file(data)
    assert item.raw == data.replace(b"\n", b" ")
    assert item.target.signature is not None
    assert verify(key, item.raw, item.target.signature)
