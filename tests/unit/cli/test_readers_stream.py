"""``ledger verify``, ``ledger tail`` and replay's summary hold a chunk of the ledger, not
the ledger; an over-long line is reported, not held; ``tail --intent`` skips what cannot
match without changing what it prints.

The scan under them: tests/unit/ledger/test_scan_stream.py.
"""

from __future__ import annotations

import io
import os
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import execd.cli.tail
from execd.cli.main import main
from execd.cli.summary import count
from execd.cli.tail import Filters, check_filters
from execd.ledger.record import LedgerChain
from execd.ledger.segments import MAX_LINE, list_segments
from tests import bulk_ledger

# A chunk of 1 MiB, the lines it splits, the output's batches: a few MiB at most,
# against a ledger of 16.
BOUND = 6 << 20


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    directory = tmp_path_factory.mktemp("big")
    return directory, bulk_ledger.build(directory, 16 << 20)


def peak(run: Callable[[], object]) -> tuple[object, int]:
    tracemalloc.start()
    try:
        answer = run()
        return answer, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture
def devnull() -> Iterator[io.BufferedWriter]:
    with open(os.devnull, "wb") as sink:
        yield sink


def test_verify_holds_a_chunk(big: tuple[Path, int],
                              capsys: pytest.CaptureFixture[str]) -> None:
    directory, records = big
    code, top = peak(lambda: main(["ledger", "verify", "--ledger", str(directory)]))
    assert code == 0
    assert capsys.readouterr().out.startswith(f"ok: {records} records")
    assert top < BOUND, top


@pytest.mark.parametrize("args", [
    {"last": 0, "as_json": True, "filters": Filters()},
    {"last": 0, "as_json": False, "filters": Filters()},
    {"last": 10, "as_json": False, "filters": Filters()},
    {"last": 0, "as_json": False, "filters": Filters(intent="00000000-0000-0000-0000-0000000010")},
])
def test_tail_holds_a_chunk(big: tuple[Path, int], devnull: io.BufferedWriter,
                            args: dict[str, object]) -> None:
    directory, _ = big
    _, top = peak(lambda: execd.cli.tail.tail(directory, devnull, follow=False,
                                              **args))  # type: ignore[arg-type]
    assert top < BOUND, top


def test_the_summary_holds_a_chunk(big: tuple[Path, int]) -> None:
    directory, records = big
    summary, top = peak(lambda: count(directory))
    assert summary.records == records  # type: ignore[attr-defined]
    assert top < BOUND, top


def test_tail_intent_prints_what_it_printed_when_it_decoded_every_body(
        big: tuple[Path, int]) -> None:
    directory, _ = big
    out = io.BytesIO()
    execd.cli.tail.tail(directory, out, last=0, follow=False, as_json=False,
                        filters=check_filters("", "", "", "00000000-0000-0000-0000-0000000010"))
    printed = out.getvalue().splitlines()
    assert len(printed) == 256 and all(b"intent=00000000-0000-0000-0000-0000000010" in line
                                       for line in printed)


def stored(directory: Path, lines: list[bytes]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "segment-00000001.jsonl").write_bytes(b"".join(lines))


# Prefixes with a dash, which no hash holds: the records' hashes must not match by chance.
_IDS = st.sampled_from(["abc-1", "abd-", "ABC-1", "ab-", "a\\u0062c-1", "x", 7, None])
_BODIES = st.fixed_dictionaries({"intent_id": _IDS}, optional={
    "clock": st.sampled_from(["wall", "logical"]), "detail": st.text(max_size=5),
    "n": st.sampled_from(["1", "1.5e3", "-0", "[[[[1]]]]", "[" * 130 + "]" * 130])})


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["outcome", "start", "stop"]), _BODIES,
                          st.sampled_from(["", "garbage", "cut", "utf8"])), max_size=12),
       st.sampled_from(["ab-", "abc-", "abc-1", "abd-"]), st.booleans())
def test_skipping_by_bytes_changes_nothing_printed(
        records: list[tuple[str, dict[str, object], str]], prefix: str,
        as_json: bool) -> None:
    """Against the same tail with every body decoded: the same bytes out, for bodies with
    escapes, non-ASCII text, deep nesting, start records, lines that are no record. (Not
    a number no float holds, 1e400: tail.py, ``_cannot_match``.)"""
    chain = LedgerChain()
    lines = []
    for kind, fields, damage in records:
        body = msgspec.json.encode({k: v for k, v in fields.items() if k != "n"})
        if "n" in fields:  # raw JSON, not a string
            body = body[:-1] + (b"," if len(body) > 2 else b"") + b'"n":' + \
                str(fields["n"]).encode() + b"}"
        body = body.replace(b'"a\\\\u0062c-1"', b'"a\\u0062c-1"')  # the escape itself
        line = chain.append(kind, 1, body)
        if damage == "garbage":
            line = b"{not json}\n"
        elif damage == "cut":
            line = line[: len(line) // 2] + b"\n"
        elif damage == "utf8":
            line = line.replace(b'"hash"', b'"\xff":1,"hash"')
        lines.append(line)
    with __import__("tempfile").TemporaryDirectory() as temporary:
        directory = Path(temporary)
        stored(directory, lines)
        filters = check_filters("", "", "", prefix)
        fast, slow = io.BytesIO(), io.BytesIO()
        execd.cli.tail.tail(directory, fast, last=0, follow=False, as_json=as_json,
                            filters=filters)
        original = execd.cli.tail._Reading._cannot_match
        try:
            execd.cli.tail._Reading._cannot_match = lambda self, line: False  # type: ignore[method-assign]
            execd.cli.tail.tail(directory, slow, last=0, follow=False, as_json=as_json,
                                filters=filters)
        finally:
            execd.cli.tail._Reading._cannot_match = original  # type: ignore[method-assign]
        assert fast.getvalue() == slow.getvalue()


def test_an_over_long_line_is_reported_not_held(tmp_path: Path,
                                                capsysbinary: pytest.CaptureFixture[bytes],
                                                ) -> None:
    chain = LedgerChain()
    first = chain.append("stop", 1, b'{"reason":"a"}')
    last = chain.append("stop", 2, b'{"reason":"b"}')
    stored(tmp_path, [first, b"x" * (MAX_LINE + 1) + b"\n", last])
    for args in ([], ["--json"]):
        top = peak(lambda: main(["ledger", "tail", "-n", "0", "--ledger", str(tmp_path),
                                 *args]))[1]  # noqa: B023
        out = capsysbinary.readouterr().out.splitlines()
        assert out[1] == f"(unreadable line: longer than {MAX_LINE} bytes)".encode()
        assert out[0] == (first[:-1] if args else b"#1 t=1 stop a")
        assert out[2] == (last[:-1] if args else b"#2 t=2 stop b") and len(out) == 3
        assert top < MAX_LINE + (4 << 20), top  # held up to the bound, then dropped
    summary = count(tmp_path)
    assert (summary.records, summary.unreadable) == (2, 1)
    assert list_segments(tmp_path)
