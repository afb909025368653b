"""``execd ctl`` against the daemon running as a real process, killed and restarted."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
from pathlib import Path

from execd.model import reasons
from tests.helpers import (
    EXECD,
    ROOT,
    control_socket,
    count_outcomes,
    ctl,
    drop,
    intent,
    ledger_bytes,
    lines,
    outcomes,
    records,
    start_daemon,
    started,
    stop,
    wait_for,
    write_config,
)


def test_halt_survives_a_kill_and_resume_and_safety_sell_work(tmp_path: Path) -> None:
    """A halt is never forgotten across a SIGKILL: the restarted daemon is still HALTED."""
    path, process = started(tmp_path)
    ledger, inbox = tmp_path / "ledger", tmp_path / "lakehouse" / "inbox"
    try:
        sock = control_socket(tmp_path)
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        drop(inbox, "0001.jsonl", lines(intent(1, quantity="2"), intent(2, symbol="ETH/USDT",
                                                                         side="sell")))
        wait_for(lambda: count_outcomes(ledger) == 2)
        halt = ctl(path, "halt", "--reason", "exchange incident", "--actor", "alice")
        assert halt.returncode == 0 and "trading state HALTED (ledger seq" in halt.stdout
        drop(inbox, "0002.jsonl", lines(*(intent(n) for n in range(3, 8))))
        wait_for(lambda: count_outcomes(ledger) == 7)
        assert [b["reason"] for b in outcomes(ledger)[2:]] == [reasons.TRADING_HALTED] * 5
        process.kill()
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()

    # Restarted after SIGKILL: the stale socket is replaced, the state is still HALTED.
    process = start_daemon(path, tmp_path / "daemon.log")
    try:
        wait_for(lambda: ctl(path, "status").returncode == 0)
        status = ctl(path, "status", "--json")
        reply = json.loads(status.stdout)
        assert reply["state"] == "HALTED" and reply["state_note"] == "alice: exchange incident"
        assert {(p["symbol"], p["position"]) for p in reply["positions"]} == {
            ("BTC/USDT", "2"), ("ETH/USDT", "-0.5")}
        # A second daemon on the same ledger stops before writing a byte to it, whether
        # it shares the control socket or not.
        before = ledger_bytes(ledger)
        other = tmp_path / "other.toml"
        other.write_text(path.read_text().replace(str(control_socket(tmp_path)),
                                                  str(control_socket(tmp_path / "other"))))
        for config_path in (path, other):
            second = subprocess.run([*EXECD, "run", "--config", str(config_path)],
                                    capture_output=True, text=True, cwd=ROOT, timeout=60)
            assert second.returncode == 1
            assert f"another process holds the ledger in {ledger}" in second.stdout
        assert ledger_bytes(ledger) == before

        sell = ctl(path, "safety-sell", "--venue", "binance", "--reason", "flatten",
                   "--actor", "alice")
        assert sell.returncode == 0, sell.stderr
        assert "2 exit order(s)" in sell.stdout and "sell 2 BTC/USDT" in sell.stdout
        wait_for(lambda: count_outcomes(ledger) == 9)
        exits = outcomes(ledger)[7:]
        assert {(b["symbol"], b["side"], b["status"]) for b in exits} == {
            ("BTC/USDT", "sell", "FILLED"), ("ETH/USDT", "buy", "FILLED")}
        assert json.loads(ctl(path, "status", "--json").stdout)["positions"] == []

        assert ctl(path, "resume", "--reason", "over", "--actor", "alice").returncode == 0
        drop(inbox, "0003.jsonl", lines(intent(20)))
        wait_for(lambda: count_outcomes(ledger) == 10)
        assert outcomes(ledger)[-1]["status"] == "FILLED"

        tick = ctl(path, "tick", "500", "--actor", "alice")
        assert tick.returncode == 0 and "logical time 500" in tick.stdout
        back = ctl(path, "tick", "400", "--actor", "alice")
        assert back.returncode == 1 and "tick 400 is before the current time 500" in back.stderr
        assert stop(process) == 0
    finally:
        if process.poll() is None:
            process.kill()
    kinds = [(r["kind"], r["body"].get("state"), r["body"].get("actor")) for r in records(ledger)]
    assert ("trading_state", "HALTED", "alice") in kinds
    assert ("trading_state", "ACTIVE", "alice") in kinds
    assert ("tick", None, "alice") in kinds
    assert not control_socket(tmp_path).exists()
    verify = subprocess.run([*EXECD, "ledger", "verify", "--ledger", str(ledger)],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert verify.returncode == 0


def test_halt_is_obeyed_within_one_message(tmp_path: Path) -> None:
    """Halted mid-file: every intent after the halt record, in ledger order, is refused."""
    path, process = started(tmp_path, items=256, q=2)
    ledger = tmp_path / "ledger"
    try:
        drop(tmp_path / "lakehouse" / "inbox", "big.jsonl",
             lines(*(intent(n, quantity="0.001") for n in range(60_000))))
        wait_for(lambda: count_outcomes(ledger) > 2_000, interval=0.005)
        halt = ctl(path, "halt", "--reason", "mid-file", "--actor", "bob")
        assert halt.returncode == 0, halt.stderr
        wait_for(lambda: count_outcomes(ledger) == 60_000, timeout=120)
        assert stop(process) == 0
    finally:
        if process.poll() is None:
            process.kill()
    every = records(ledger)
    at = next(i for i, r in enumerate(every) if r["kind"] == "trading_state")
    before = [r["body"]["status"] for r in every[:at] if r["kind"] == "outcome"]
    after = [r["body"].get("reason") for r in every[at:] if r["kind"] == "outcome"]
    assert before and set(before) == {"FILLED"}
    assert after and set(after) == {reasons.TRADING_HALTED}
    assert len(before) + len(after) == 60_000


def test_bad_control_requests_get_clear_answers(tmp_path: Path) -> None:
    path, process = started(tmp_path)
    try:
        missing = subprocess.run([*EXECD, "ctl", "halt", "--actor", "x", "--config", str(path)],
                                 capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert missing.returncode == 2 and "--reason" in missing.stderr
        blank = ctl(path, "halt", "--reason", " ", "--actor", "x")
        assert blank.returncode == 2 and "halt needs reason" in blank.stderr
        unknown = ctl(path, "safety-sell", "--venue", "kraken", "--reason", "r", "--actor", "x")
        assert unknown.returncode == 1 and "venue='kraken' is not in the config" in unknown.stderr
        for raw, error in ((b"not json\n", "bad request"),
                           (b'{"command":"explode"}\n', "bad request"),
                           (b'{"command":"halt","reason":"r"}\n', "halt needs actor")):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                client.settimeout(10)
                client.connect(str(control_socket(tmp_path)))
                client.sendall(raw)
                reply = json.loads(client.makefile("rb").readline())
            assert reply["ok"] is False and error in reply["error"], reply
        assert json.loads(ctl(path, "status", "--json").stdout)["state"] == "ACTIVE"
        # Another ledger and lakehouse, the same socket: refused before its ledger gets
        # a record.
        other = tmp_path / "other.toml"
        other.write_text(path.read_text().replace(str(tmp_path / "ledger"),
                                                  str(tmp_path / "ledger2"))
                         .replace(str(tmp_path / "lakehouse"), str(tmp_path / "lakehouse2")))
        second = subprocess.run([*EXECD, "run", "--config", str(other)], capture_output=True,
                                text=True, cwd=ROOT, timeout=60)
        assert second.returncode == 1 and "another execd is serving" in second.stdout
        assert not list((tmp_path / "ledger2").glob("segment-*"))
        assert stop(process) == 0
    finally:
        if process.poll() is None:
            process.kill()
    nobody = ctl(path, "status")
    assert nobody.returncode == 1 and "no daemon is listening" in nobody.stderr


def test_group_access_makes_the_socket_0660(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    sock = control_socket(tmp_path)
    path.write_text(path.read_text().replace(f'socket = "{sock}"',
                                             f'socket = "{sock}"\ngroup_access = true'))
    process = start_daemon(path, tmp_path / "daemon.log")
    try:
        wait_for(lambda: sock.exists() or process.poll() is not None)
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o660
        assert stop(process) == 0
    finally:
        if process.poll() is None:
            process.kill()
