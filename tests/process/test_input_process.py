"""The real ``execd run`` process against hostile input lines: it records them and goes on."""

from __future__ import annotations

import json
from pathlib import Path

from execd.model import reasons
from execd.sentinel.signatures import sign
from tests.helpers import (
    ctl,
    drop,
    intent,
    lines,
    outcomes,
    records,
    start_daemon,
    stop,
    verify,
    wait_for,
    write_config,
)

KEY = b"k" * 32



def signed(body: dict[str, object]) -> str:
    raw = json.dumps(body)
    return json.dumps({**body, "signature": sign(KEY, raw.encode())})


def deep(n: int, levels: int) -> str:
    """An intent whose context nests so that the line is ``levels`` deep."""
    inner = levels - 2
    body = json.dumps(intent(n))[:-1]
    return body + ', "context": {"k": ' + '{"a":' * inner + "1" + "}" * inner + "}}"


def signing_config(tmp_path: Path) -> Path:
    key = tmp_path / "intent.key"
    key.write_bytes(KEY)
    return write_config(tmp_path, level="info", outcomes="each",
                        risk=f'signatures = "all"\nkey_file = "{key}"')


def test_deep_json_is_recorded_and_never_stops_the_daemon(tmp_path: Path) -> None:
    """JSON nested however deep never crashes the daemon, on the first run or on a restart: each
    line is recorded.
    """
    # ~970 deep decoded in the reader but overflowed the signature check's json;
    # ~1,000 overflowed the reader itself. Either killed the daemon on every restart.
    config = signing_config(tmp_path)
    inbox, ledger = tmp_path / "lakehouse" / "inbox", tmp_path / "ledger"
    archive = tmp_path / "lakehouse" / "archive"
    drop(inbox, "01-deep.jsonl", lines(deep(1, 970), deep(2, 1_000), deep(3, 100_000),
                                       signed(intent(4))))
    for attempt in range(2):  # a restart reads on; nothing makes it crash again
        process = start_daemon(config, tmp_path / "log")
        try:
            name = f"0{attempt + 2}-after.jsonl"
            drop(inbox, name, lines(signed(intent(10 + attempt))))
            wait_for(lambda n=name, p=process: (archive / n).exists() or p.poll() is not None)
            assert process.poll() is None, (tmp_path / "log").read_text()[-2000:]
        finally:
            if process.poll() is None:
                assert stop(process) == 0
    verify(ledger)
    got = [(o["source"][0], o["source"][1], o["status"], o.get("reason"))
           for o in outcomes(ledger)]
    assert got == [
        ("01-deep.jsonl", 1, "QUARANTINED", reasons.INPUT_TOO_DEEP),
        ("01-deep.jsonl", 2, "QUARANTINED", reasons.INPUT_TOO_DEEP),
        ("01-deep.jsonl", 3, "QUARANTINED", reasons.INPUT_TOO_DEEP),
        ("01-deep.jsonl", 4, "FILLED", None),
        ("02-after.jsonl", 1, "FILLED", None),
        ("03-after.jsonl", 1, "FILLED", None),
    ]


def test_tick_times_beyond_the_ledger_s_range_are_refused(tmp_path: Path) -> None:
    # A tick to 10**4299 used to be accepted: every later record then carried a
    # 4,300-digit time, and every later tick was a regression, restart or not.
    config = write_config(tmp_path, level="info")
    inbox, ledger = tmp_path / "lakehouse" / "inbox", tmp_path / "ledger"
    archive = tmp_path / "lakehouse" / "archive"
    drop(inbox, "01.jsonl", lines(f'{{"kind":"tick","time":{10**4299}}}',
                                  f'{{"kind":"tick","time":{2**63}}}',
                                  '{"kind":"tick","time":5}', intent(1)))
    process = start_daemon(config, tmp_path / "log")
    try:
        wait_for(lambda: (archive / "01.jsonl").exists())
        refused = ctl(config, "tick", str(2**63), "--actor", "ops")
        assert refused.returncode != 0
        assert "from 0 to 9223372036854775807" in refused.stdout + refused.stderr
        moved = ctl(config, "tick", str(2**63 - 1), "--actor", "ops")
        assert moved.returncode == 0, moved.stdout + moved.stderr
    finally:
        assert stop(process) == 0
    verify(ledger)
    got = [(o["source"][1], o["status"], o.get("reason"), o["logical_time"])
           for o in outcomes(ledger)]
    assert got == [(1, "QUARANTINED", reasons.INPUT_SCHEMA_VIOLATION, 0),
                   (2, "QUARANTINED", reasons.INPUT_SCHEMA_VIOLATION, 0),
                   (4, "FILLED", None, 5)]
    ticks = [r["body"]["time"] for r in records(ledger) if r["kind"] == "tick"]
    assert ticks == [5, 2**63 - 1]
    assert max(r["time"] for r in records(ledger)) == 2**63 - 1


def test_decimal_strings_must_be_json_numbers(tmp_path: Path) -> None:
    # Python's Decimal() took these as 1000, 1, 12 and 0.5: filled at the wrong size.
    config = write_config(tmp_path, level="info")
    inbox, ledger = tmp_path / "lakehouse" / "inbox", tmp_path / "ledger"
    archive = tmp_path / "lakehouse" / "archive"
    drop(inbox, "01.jsonl", lines(intent(1, quantity="1_000"), intent(2, quantity=" 1"),
                                  intent(3, quantity="\u0661\u0662"),
                                  intent(4, reference_price="+64200"),
                                  intent(5, quantity=0.5, limit_price="064250", order_type="limit"),
                                  intent(6, quantity="1e-2", reference_price=64200.50)))
    process = start_daemon(config, tmp_path / "log")
    try:
        wait_for(lambda: (archive / "01.jsonl").exists())
    finally:
        assert stop(process) == 0
    verify(ledger)
    got = [(o["status"], o.get("reason"), o.get("detail", "").split(" - at ")[-1])
           for o in outcomes(ledger)]
    refused = ("QUARANTINED", reasons.INPUT_SCHEMA_VIOLATION)
    assert got == [(*refused, "`$.quantity`"), (*refused, "`$.quantity`"),
                   (*refused, "`$.quantity`"), (*refused, "`$.reference_price`"),
                   (*refused, "`$.limit_price`"), ("FILLED", None, "")]
    assert outcomes(ledger)[-1]["filled_quantity"] == "0.01"
