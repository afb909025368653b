"""Target files against the real ``execd run`` (README, "Target files"): a producer
rewrites one name in ``<lakehouse>/targets/``; every version is claimed and read whole,
a newer one supersedes, the same one again sends nothing, a bad one is a recorded
refusal, and the numbering goes on across a SIGKILL."""

from __future__ import annotations

import json
import signal
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import (
    EXECD,
    ROOT,
    drop,
    outcomes,
    records,
    start_daemon,
    started,
    stop,
    verify,
    wait_for,
)

pytestmark = pytest.mark.process
NAME = "portfolio_optimized_v3.json"


def version(as_of: int, btc: str, eth: str) -> bytes:
    """What an optimizer writes: indented, no ``kind`` (a target is what the file holds)."""
    return json.dumps({
        "portfolio_id": "core", "source_run": "run-1", "as_of": as_of, "venue": "binance",
        "capital": "10000",
        "targets": [{"symbol": "BTC/USDT", "quantity": btc},
                    {"symbol": "ETH/USDT", "weight": eth, "price": "2500"}],
    }, indent=2).encode() + b"\n"


def held(ledger: Path) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for body in outcomes(ledger):
        if body.get("children") is None and body["status"] == "FILLED":
            sign = 1 if body["side"] == "buy" else -1
            out[body["symbol"]] = out.get(body["symbol"], Decimal(0)) + sign * Decimal(
                body["filled_quantity"])
    return out


def of_kind(ledger: Path, kind: str) -> list[dict[str, Any]]:
    return [r["body"] for r in records(ledger) if r["kind"] == kind]


def archived(lakehouse: Path) -> list[str]:
    return sorted(p.name for p in (lakehouse / "archive").glob(f"{NAME}.*"))


def test_every_version_of_a_target_file_is_read_once_and_the_last_one_held(
        tmp_path: Path) -> None:
    path, process = started(tmp_path)
    lakehouse, ledger = tmp_path / "lakehouse", tmp_path / "ledger"
    targets = lakehouse / "targets"
    try:
        drop(targets, NAME, version(1, "2", "0.5"))      # 2 BTC, 0.5 x 10000 / 2500 ETH
        wait_for(lambda: len(archived(lakehouse)) == 1)
        wait_for(lambda: held(ledger) == {"BTC/USDT": 2, "ETH/USDT": 2})
        drop(targets, NAME, version(2, "0.5", "0.25"))   # supersedes: sells 1.5 and 1
        wait_for(lambda: held(ledger) == {"BTC/USDT": Decimal("0.5"), "ETH/USDT": 1})
        drop(targets, NAME, version(2, "0.5", "0.25"))   # the same target again
        wait_for(lambda: len(archived(lakehouse)) == 3)
        drop(targets, NAME, b'{"portfolio_id": "core",\n  "as_of": ')  # cut short
        wait_for(lambda: len(archived(lakehouse)) == 4)
        # After a SIGKILL the numbering goes on from the ledger's file tables.
        assert stop(process, signal.SIGKILL) == -signal.SIGKILL
        drop(targets, NAME, version(3, "1", "0.25"))
        process = start_daemon(path, tmp_path / "daemon.log")
        wait_for(lambda: held(ledger) == {"BTC/USDT": 1, "ETH/USDT": 1})
        wait_for(lambda: len(archived(lakehouse)) == 5)
    finally:
        assert stop(process) == 0
    assert archived(lakehouse) == [f"{NAME}.target-{n}" for n in range(1, 6)]
    assert list(targets.iterdir()) == [] and list((lakehouse / "work").iterdir()) == []
    found = of_kind(ledger, "target")
    assert [t["as_of"] for t in found] == [1, 2, 3]
    files = {r["body"]["source"][0] for r in records(ledger)
             if r["kind"] == "target"}
    assert files == {f"{NAME}.target-1", f"{NAME}.target-2", f"{NAME}.target-5"}
    refusals = {(o["source"][0], o["reason"]) for o in outcomes(ledger)
                if o.get("reason") in ("TARGET_REPEATED", "INPUT_MALFORMED_JSON")}
    assert refusals == {(f"{NAME}.target-3", "TARGET_REPEATED"),
                        (f"{NAME}.target-4", "INPUT_MALFORMED_JSON")}
    # One order per leg, and no leg sent twice across the kill.
    sent = [leg[4] for t in found for leg in t["legs"] if leg[5] == "sent"]
    assert len(sent) == len(set(sent)) == 5  # 2 buys, 2 sells, then 0.5 BTC more
    ids = [o["intent_id"] for o in outcomes(ledger)]
    assert all(ids.count(leg) == 1 for leg in sent)
    verify(ledger)


def test_a_target_file_signed_by_execd_sign_is_taken_where_signatures_are_required(
        tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_bytes(b"0123456789abcdef0123456789abcdef")
    source = tmp_path / NAME
    source.write_bytes(version(1, "2", "0.5"))
    signed = subprocess.run([*EXECD, "sign", "--key-file", str(key), str(source)],
                            capture_output=True, cwd=ROOT, timeout=60)
    assert signed.returncode == 0, signed.stderr
    assert signed.stdout.startswith(source.read_bytes().strip()[:-1].rstrip())  # as written
    _, process = started(tmp_path, risk=f'signatures = "all"\nkey_file = "{key}"')
    lakehouse, ledger = tmp_path / "lakehouse", tmp_path / "ledger"
    try:
        drop(lakehouse / "targets", NAME, version(1, "2", "0.5"))   # unsigned: refused
        wait_for(lambda: len(archived(lakehouse)) == 1)
        drop(lakehouse / "targets", NAME, signed.stdout)
        wait_for(lambda: held(ledger) == {"BTC/USDT": 2, "ETH/USDT": 2})
    finally:
        assert stop(process) == 0
    [refused] = [o for o in outcomes(ledger) if o["status"] == "REJECTED"]
    assert (refused["reason"], refused["source"][0]) == (
        "PROVENANCE_SIGNATURE_MISSING", f"{NAME}.target-1")
    assert [t.get("signed") for t in of_kind(ledger, "target")] == [True]
