"""The whole pipeline in-process: determinism and exactly one outcome per input line."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from execd.model import reasons
from tests.helpers import intent, ledger_bytes, lines, outcomes, records, replay, write_inputs

SIZES = [
    {"q": 1, "items": 1, "commit_records": 1, "chunk": 4096, "commits": 1},
    {"q": 64, "items": 4096, "commit_records": 65536, "chunk": 1 << 20, "commits": 4},
    {"q": 2, "items": 7, "commit_records": 13, "chunk": 4099, "commits": 2},
]


def mixed_files(directory: Path) -> list[Path]:
    first = directory / "a.jsonl"
    first.write_bytes(lines(
        {"kind": "tick", "time": 100},
        *(intent(n, venue=["binance", "alpaca", "stubfail"][n % 3]) for n in range(300)),
        "{not json", intent(5), intent(9999, quantity="-1"),
        {"kind": "tick", "time": 200}, intent(10_000, venue="nowhere"),
    ))
    second = directory / "b.jsonl"
    second.write_bytes(lines(*(intent(n, side=None, action="TRIM") for n in range(300, 700))))
    return [first, second]


async def test_replays_are_byte_identical_whatever_the_sizes(tmp_path: Path) -> None:
    """Queue, batch and commit sizes never change a byte of a paper replay's ledger."""
    inputs = mixed_files(tmp_path)
    ledgers = []
    for index, sizes in enumerate(SIZES):
        ledger = await replay(tmp_path / f"run{index}", inputs, **sizes)
        ledgers.append(ledger_bytes(ledger))
    assert ledgers[0] == ledgers[1] == ledgers[2]
    assert len(ledgers[0]) > 100_000


async def test_exactly_one_outcome_per_line_and_no_second_fill(tmp_path: Path) -> None:
    """No input line ever gets zero or two outcomes, and no intent id is ever filled twice."""
    inputs = mixed_files(tmp_path)
    ledger = await replay(tmp_path / "run", inputs)
    done = outcomes(ledger)
    by_source = {}
    for body in done:
        key = (body["source"][0], body["source"][1])
        assert key not in by_source, f"two outcomes for {key}"
        by_source[key] = body
    expected = {("a.jsonl", n) for n in range(2, 307) if n != 305} | \
               {("b.jsonl", n) for n in range(1, 401)}
    assert set(by_source) == expected
    filled = [b["intent_id"] for b in done if b["status"] == "FILLED"]
    assert len(filled) == len(set(filled))
    dup = by_source[("a.jsonl", 303)]
    assert (dup["status"], dup["reason"]) == ("REJECTED", reasons.INTENT_DUPLICATE)
    failed = [b for b in done if b.get("venue") == "stubfail"]
    assert failed and all(b["status"] == "FAILED" and b["plane"] == "live" and
                          b["reason"] == reasons.EXECUTION_NOT_AVAILABLE for b in failed)
    kinds = [r["kind"] for r in records(ledger)]
    assert kinds[0] == "start" and kinds[-1] == "stop"
    assert kinds.count("input_file") == 2


async def test_outcomes_carry_plane_time_and_the_intent(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    raw = json.dumps(intent(1, venue="alpaca", reference_price="101.5"))
    source.write_bytes(lines({"kind": "tick", "time": 42}, raw))
    (body,) = outcomes(await replay(tmp_path / "run", [source]))
    assert body["plane"] == "paper" and body["status"] == "FILLED"
    assert body["filled_quantity"] == "0.5" == body["requested_quantity"]
    assert body["logical_time"] == 42 and body["average_price"] == "101.5"
    assert body["intent"] == json.loads(raw)
    assert "reason" not in body
    start = records(tmp_path / "run" / "ledger")[0]["body"]
    assert start["planes"] == {"alpaca": "paper", "binance": "paper", "stubfail": "live"}


intent_sets = st.lists(
    st.one_of(
        st.builds(lambda n, q, v, s: json.dumps(intent(n, quantity=q, venue=v, side=s)),
                  st.integers(0, 40), st.sampled_from(["1", "0.001", "0", "-3", "1e3", "x"]),
                  st.sampled_from(["binance", "alpaca", "stubfail", "bad"]),
                  st.sampled_from(["buy", "sell", None])),
        st.builds(lambda t: json.dumps({"kind": "tick", "time": t}), st.integers(0, 50)),
        st.sampled_from(["", "{", "[]", '{"kind":"intent"}', "\u00e9"]),
    ),
    max_size=60,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(intent_sets, min_size=1, max_size=3), st.sampled_from(SIZES),
       st.sampled_from(SIZES))
def test_generated_intent_sets_replay_identically(files: list[list[str]], one: dict[str, Any],
                                                  two: dict[str, Any]) -> None:
    """No input, however malformed, ever makes replays with different sizes differ by a byte, or
    leaves a line without its one outcome or tick.
    """
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        inputs = write_inputs(directory, files)
        first = anyio.run(replay, directory / "one", inputs)  # default sizes
        ledgers = [ledger_bytes(first)]
        for index, sizes in enumerate((one, two)):
            async def go(sizes: dict[str, Any] = sizes, index: int = index) -> Path:
                return await replay(directory / f"s{index}", inputs, **sizes)
            ledgers.append(ledger_bytes(anyio.run(go)))
        assert ledgers[0] == ledgers[1] == ledgers[2]
        # exactly one outcome per non-blank line (plus one per empty file)
        bodies = outcomes(first)
        expected = sum(1 for content in files for line in content if line.strip())
        expected += sum(1 for content in files if not any(line.strip() for line in content))
        ticks = [r for r in records(first) if r["kind"] == "tick"]
        assert len(bodies) + len(ticks) == expected


async def test_every_outcome_of_a_decoded_intent_carries_the_intent(tmp_path: Path) -> None:
    # Refusals made before any venue (sentinel and risk) keep the line as received,
    # so audit sees research's reason codes and context whatever the outcome.
    audit = {"reason_codes": ["momentum-up", "r-17"], "context": {"model": "m1", "score": 0.75}}
    sent = [
        intent(1, **audit),
        intent(1, quantity="2", **audit),
        intent(2, venue="nowhere", **audit),
        intent(3, quantity="0", **audit),
        intent(4, side=None, action="HOLD", **audit),
        intent(5, source_run="run-unregistered", **audit),
        intent(6, venue="stubfail", **audit),
    ]
    source = tmp_path / "in.jsonl"
    raws = [json.dumps(body, separators=(", ", ": ")) for body in sent]
    source.write_bytes(lines(*raws))
    done = outcomes(await replay(tmp_path / "run", [source]))
    assert [(o["status"], o.get("reason")) for o in done] == [
        ("FILLED", None),
        ("REJECTED", reasons.INTENT_DUPLICATE),
        ("REJECTED", reasons.INTENT_UNKNOWN_VENUE),
        ("REJECTED", reasons.INTENT_QUANTITY_NOT_POSITIVE),
        ("SKIPPED", reasons.INTENT_HOLD),
        ("REJECTED", reasons.PROVENANCE_RUN_UNREGISTERED),
        ("FAILED", reasons.EXECUTION_NOT_AVAILABLE),
    ]
    for body, raw in zip(done, raws, strict=True):
        assert body["intent"] == json.loads(raw)
        assert body["intent"]["reason_codes"] == audit["reason_codes"]
    # The bytes themselves, exactly as received (not a re-encoding).
    ledger = ledger_bytes(tmp_path / "run" / "ledger")
    assert all(raw.encode() in ledger for raw in raws)
