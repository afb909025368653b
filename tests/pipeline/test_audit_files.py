"""The lakehouse's derived files (README, "The audit files"), kept by ``execd run``
against the fake Binance (the real ccxt): an execution log line and an audit line per
fill, the actual state with its distance from the target, all derived from durable
records; ``execd lakehouse rebuild`` writes the same bytes from the ledger alone, and a
restart rewrites them equal.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio

from execd.cli.main import main
from execd.ledger.record import record_decoder
from execd.ledger.segments import list_segments
from tests.live import fake_exchange, live_intent
from tests.live_run import run_live

D = Decimal
FILES = ("execution_logs.jsonl", "audit/audit.jsonl", "portfolio_actual_state.json")


def _hashes(ledger: Path) -> dict[int, str]:
    return {record.seq: record.hash for path in list_segments(ledger)
            for record in map(record_decoder.decode, path.read_bytes().splitlines())}


def _files(root: Path) -> dict[str, bytes]:
    return {name: (root / name).read_bytes() for name in FILES}


async def test_the_files_written_live_are_those_the_ledger_rebuilds(tmp_path: Path) -> None:
    fake = fake_exchange(liquidity=D("0.004"))
    await fake.start()
    target = {"kind": "target", "portfolio_id": "core", "source_run": "run-1", "as_of": 1,
              "venue": "binance", "urgency": "critical",
              "targets": [{"symbol": "BTC/USDT", "quantity": "0.02", "price": "50000"}]}
    try:
        ledger = await run_live(tmp_path, fake, [live_intent(1), target], expect=2)
    finally:
        await fake.stop()
    lakehouse = tmp_path / "lakehouse"
    live = _files(lakehouse)
    fills = [r for r in ledger if r["kind"] == "outcome" and r["body"]["status"] in (
        "FILLED", "PARTIALLY_FILLED")]
    logs = [json.loads(x) for x in live["execution_logs.jsonl"].splitlines()]
    audits = [json.loads(x) for x in live["audit/audit.jsonl"].splitlines()]
    assert [x["seq"] for x in logs] == [x["seq"] for x in audits] == [r["seq"] for r in fills]
    hashes = _hashes(tmp_path / "ledger")
    for line, record in zip(audits, fills, strict=True):
        assert (line["hash"], line["source_run"]) == (hashes[record["seq"]], "run-1")
    assert audits[1]["target_id"] is not None and audits[0]["target_id"] is None
    # Live fills: sent, accepted and filled wall times, and the latency between.
    assert all(x["sent"] and x["accepted"] and x["filled_at"] for x in logs)
    assert all(x["latency_ms"] >= 0 for x in logs)
    state = json.loads(live["portfolio_actual_state.json"])
    assert state["as_of_seq"] == ledger[-1]["seq"]
    assert state["as_of_hash"] == hashes[ledger[-1]["seq"]]
    btc = state["venues"]["binance"]["BTC/USDT"]
    # 0.004 + 0.004 filled, less the fees the venue took in BTC.
    assert D(btc["position"]) == D("0.008") - D("0.000008")
    assert state["portfolios"]["core"]["symbols"]["BTC/USDT"]["target"] == "0.02"
    # The rebuild, from the ledger alone.
    out = tmp_path / "rebuilt"
    assert main(["lakehouse", "rebuild", "--config", str(tmp_path / "execd.toml"),
                 "--into", str(out)]) == 0
    assert _files(out) == live
    assert main(["lakehouse", "rebuild", "--config", str(tmp_path / "execd.toml")]) == 0
    assert _files(lakehouse) == live


async def test_a_restart_rewrites_the_files_equal_to_a_rebuild(tmp_path: Path) -> None:
    fake = fake_exchange()
    await fake.start()
    try:
        await run_live(tmp_path, fake, [live_intent(1)])
        ledger = await run_live(tmp_path, fake, [live_intent(2, side="sell", quantity="0.005")],
                                name="b.jsonl", expect=2)
    finally:
        await fake.stop()
    live = _files(tmp_path / "lakehouse")
    assert len(live["audit/audit.jsonl"].splitlines()) == 2
    out = tmp_path / "rebuilt"
    assert main(["lakehouse", "rebuild", "--config", str(tmp_path / "execd.toml"),
                 "--into", str(out)]) == 0
    assert _files(out) == live
    assert json.loads(live["portfolio_actual_state.json"])["as_of_seq"] == ledger[-1]["seq"]




async def test_a_start_resumes_the_files_where_any_round_left_them(tmp_path: Path) -> None:
    """Resumed after any record (and after a round cut short between its appends and its
    resume point), the files equal those derived from the whole ledger; a resume point
    the ledger or the files no longer bear out is not used."""
    import shutil

    from execd.app.audit_files import AuditFiles, rebuild
    from tests.helpers import intent, lines, replay

    rows = [intent(n, quantity="0.5", side="buy" if n % 3 else "sell",
                   reference_price=str(100 + n)) for n in range(1, 9)]
    rows.insert(4, {"kind": "target", "portfolio_id": "core", "source_run": "run-1",
                    "as_of": 1, "venue": "binance",
                    "targets": [{"symbol": "ETH/USDT", "quantity": "3", "price": "2000"}]})
    (tmp_path / "in.jsonl").write_bytes(lines(*rows))
    ledger = await replay(tmp_path / "run", [tmp_path / "in.jsonl"])
    rebuild(tmp_path / "whole", ledger)
    expected = _files(tmp_path / "whole")
    last = max(_hashes(ledger))

    def derive(root: Path, ledger: Path, head: int = 2**63 - 1) -> int | None:
        files = AuditFiles(root, ledger)
        files.step(head)
        files.close()
        return files.resumed

    for head in range(1, last + 1):
        root = tmp_path / f"at{head}"
        assert derive(root, ledger, head) is None
        with open(root / "execution_logs.jsonl", "ab") as log:
            log.write(b'{"a round cut short": 1}\n')  # appended, then no resume point
        assert derive(root, ledger) == head
        assert _files(root) == expected, head
    # What the resume point says no longer holds: the start derives from the first record.
    (tmp_path / "other.jsonl").write_bytes(lines(*rows[1:]))
    other = await replay(tmp_path / "other_run", [tmp_path / "other.jsonl"])
    root = tmp_path / "spoilt"
    point = root / "audit" / ".derived.json"

    def edit(change: Any) -> None:
        saved = json.loads(point.read_bytes())
        change(saved)
        point.write_text(json.dumps(saved))

    def sizes_to(log: int, audit: int) -> Any:
        return lambda saved: saved.update(log_size=log, audit_size=audit)

    def spoilt(name: str) -> Any:
        if name == "files":
            (root / "audit" / "audit.jsonl").write_bytes(b"")
        elif name == "point":
            point.write_bytes(b"{not json")
        elif name == "held":  # the seq and hash left alone, the position edited
            edit(lambda saved: saved["derivation"]["held"][0].__setitem__(2, "1000000"))
        elif name == "targets":
            edit(lambda saved: saved["derivation"].update(targets={"x": {}}))
        elif name == "smaller":  # a line's end, but lines of earlier fills after it
            edit(sizes_to(0, 0))
        elif name == "mid-line":
            edit(sizes_to(10, 10))
        elif name == "fifo-point":
            point.unlink()
            os.mkfifo(point)
        elif name == "fifo-log":
            (root / "execution_logs.jsonl").unlink()
            os.mkfifo(root / "execution_logs.jsonl")
        return other if name == "ledger" else ledger  # another ledger where this one's was

    for spoil in ("ledger", "files", "point", "held", "targets", "smaller", "mid-line",
                  "fifo-point", "fifo-log"):
        shutil.rmtree(root, ignore_errors=True)
        derive(root, ledger, last - 2)
        used = spoilt(spoil)
        with anyio.fail_after(10):
            resumed = await anyio.to_thread.run_sync(derive, root, used)
        assert resumed is None, spoil
        rebuild(tmp_path / f"whole_{spoil}", used)
        assert _files(root) == _files(tmp_path / f"whole_{spoil}"), spoil


async def test_a_ledger_whose_first_records_were_archived_says_the_files_lack_them(
        tmp_path: Path) -> None:
    from execd.app.audit_files import rebuild
    from tests.helpers import intent, lines, replay

    (tmp_path / "in.jsonl").write_bytes(lines(*(intent(n) for n in range(1, 40))))
    ledger = await replay(tmp_path / "run", [tmp_path / "in.jsonl"], segment_bytes=4096)
    segments = list_segments(ledger)
    assert len(segments) > 2
    assert rebuild(tmp_path / "all", ledger).first == 1
    segments[0].unlink()  # as `execd ledger archive` moves it out
    done = rebuild(tmp_path / "rest", ledger)
    assert done.first is not None and done.first > 1
    assert done.records == len(_hashes(ledger))


async def test_only_a_targets_own_legs_are_its_fills_in_the_audit_file(tmp_path: Path) -> None:
    from execd.app.audit_files import rebuild
    from tests.helpers import intent, lines, replay

    twap = {"algorithm": "twap", "duration": 20, "slices": 2}
    rows = [{"kind": "target", "portfolio_id": "core", "source_run": "run-1", "as_of": 1,
             "venue": "binance", "execution": twap,
             "targets": [{"symbol": "ETH/USDT", "quantity": "3", "price": "2000"}]},
            intent(1, context={"target_id": "00000000-0000-4000-8000-00000000dead"}),
            {"kind": "tick", "time": 10}, {"kind": "tick", "time": 20}]
    (tmp_path / "in.jsonl").write_bytes(lines(*rows))
    ledger = await replay(tmp_path / "run", [tmp_path / "in.jsonl"])
    rebuild(tmp_path / "out", ledger)
    audits = [json.loads(x) for x in (tmp_path / "out" / "audit" / "audit.jsonl")
              .read_bytes().splitlines()]
    [target] = [json.loads(x)["body"] for x in list_segments(ledger)[0].read_bytes()
                .splitlines() if json.loads(x)["kind"] == "target"]
    by_symbol: dict[str, set[Any]] = {}
    for line in audits:
        by_symbol.setdefault(line["symbol"], set()).add(line["target_id"])
    assert by_symbol == {"ETH/USDT": {target["target_id"]}, "BTC/USDT": {None}}
    assert sum(1 for line in audits if line["symbol"] == "ETH/USDT") == 2  # both children
