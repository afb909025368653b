"""The real daemon with hostile lakehouse context files: it goes on, closed, and stops.

Deeply nested JSON used to raise RecursionError out of the context loader and kill
the daemon, on every restart; a FIFO used to block the reader in open() for good, so
that SIGTERM could not stop it. Each file is tried on its own, and the intents are
judged as the fail-closed rule says (see execd/reader/context.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from execd.model import reasons
from tests.helpers import (
    count_outcomes,
    drop,
    intent,
    lines,
    outcomes,
    records,
    start_daemon,
    verify,
    wait_for,
    write_config,
)

DEEP = "[" * 100_000 + "]" * 100_000
A, B = 1, 2
LIMITS = 'signatures = "none"\n\n[risk.limits]\nmax_order_notional = "1000"\n'


def intent_id(n: int) -> str:
    return str(intent(n)["intent_id"])


def priced(n: int, **fields: Any) -> dict[str, Any]:
    """An intent with its own price, so that the notional limit can judge it."""
    return intent(n, reference_price="100", **fields)


def override(n: int) -> str:
    return json.dumps({"intent_id": intent_id(n), "operator": "ops", "reason": "drill"})


# What each case puts in the lakehouse (None: a FIFO there), the two intents, the
# problem recorded, and the (status, reason) of each intent.
Case = tuple[dict[str, str | None], list[dict[str, Any]], str, list[tuple[str, str | None]]]

REFUSED_RUN = ("REJECTED", reasons.PROVENANCE_RUN_UNREGISTERED)
CRISIS = ("REJECTED", reasons.RISK_REGIME_OVERRIDE_REQUIRED)
NO_PRICE = ("REJECTED", reasons.RISK_PRICE_UNKNOWN)
FILLED = ("FILLED", None)
FIFO = "expected a regular file, found a FIFO"

CASES: dict[str, Case] = {
    "runs-nested": (
        {"audit/runs.jsonl": f'{{"run_id": "run-1", "meta": {DEEP}}}\n{{"run_id": "run-2"}}\n'},
        [priced(A, source_run="run-1"), priced(B, source_run="run-2")],
        "runs.jsonl: 1 unreadable line(s), first at line 1", [REFUSED_RUN, FILLED]),
    "runs-fifo": (
        {"audit/runs.jsonl": None},
        [priced(A, source_run="run-1"), priced(B, source_run="run-2")],
        f"runs.jsonl: {FIFO}", [REFUSED_RUN, REFUSED_RUN]),
    "regime-nested": (
        {"market/regime.json": f'{{"regime": "CALM", "x": {DEEP}}}'},
        [priced(A, urgency="high"), priced(B, urgency="low")],
        "regime.json: JSON nested too deep to decode", [CRISIS, FILLED]),
    "regime-fifo": (
        {"market/regime.json": None},
        [priced(A, urgency="high"), priced(B, urgency="low")],
        f"regime.json: {FIFO}", [CRISIS, FILLED]),
    "prices-nested": (
        {"market/prices.json": f'{{"BTC/USDT": {DEEP}}}'},
        [intent(A, quantity="1"), intent(B, quantity="1", reference_price="100")],
        "prices.json: Expected `decimal`, got `array` - at `$[...]`", [NO_PRICE, FILLED]),
    "prices-fifo": (
        {"market/prices.json": None},
        [intent(A, quantity="1"), intent(B, quantity="1", reference_price="100")],
        f"prices.json: {FIFO}", [NO_PRICE, FILLED]),
    "overrides-nested": (
        {"market/regime.json": '{"regime": "CRISIS"}',
         "control/overrides.jsonl": f'{override(A)}\n{{"intent_id": {DEEP}}}\n'},
        [priced(A, urgency="high"), priced(B, urgency="high")],
        "overrides.jsonl: 1 unreadable line(s), first at line 2", [FILLED, CRISIS]),
    "overrides-fifo": (
        {"market/regime.json": '{"regime": "CRISIS"}', "control/overrides.jsonl": None},
        [priced(A, urgency="high"), priced(B, urgency="high")],
        f"overrides.jsonl: {FIFO}", [CRISIS, CRISIS]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_hostile_context_file_is_a_problem_and_the_daemon_goes_on(tmp_path: Path,
                                                                     case: str) -> None:
    """A hostile context file never crashes or hangs the daemon: it is a recorded problem
    and intents still get their outcomes.
    """
    files, intents, problem, expected = CASES[case]
    config = write_config(tmp_path, level="info", risk=LIMITS)
    lakehouse, ledger, log = tmp_path / "lakehouse", tmp_path / "ledger", tmp_path / "log"
    for name, text in files.items():
        path = lakehouse / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        if text is None:
            os.mkfifo(path)
        else:
            path.write_text(text)
    process = start_daemon(config, log)
    try:
        drop(lakehouse / "inbox", "a.jsonl", lines(*intents))
        wait_for(lambda: count_outcomes(ledger) == 2 or process.poll() is not None)
        assert process.poll() is None, log.read_text()[-3000:]
        contexts = [r["body"] for r in records(ledger) if r["kind"] == "context"]
        assert [c.get("problems") for c in contexts] == [[problem]]
        assert [(o["status"], o.get("reason")) for o in outcomes(ledger)] == expected
        # A second file: the daemon is still taking intents, under the same context.
        drop(lakehouse / "inbox", "b.jsonl",
             lines(priced(3, urgency="low", source_run="run-2")))
        wait_for(lambda: count_outcomes(ledger) == 3 or process.poll() is not None)
        assert len([r for r in records(ledger) if r["kind"] == "context"]) == 1
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AssertionError("SIGTERM did not stop the daemon") from None
    assert code == 0, log.read_text()[-3000:]
    verify(ledger)
