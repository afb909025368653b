"""The pieces behind the service manager: notify datagrams, actor liveness, reload rules."""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from decimal import Decimal
from pathlib import Path

import anyio
import pytest

from execd.app.reload import changed_keys, changes, needs_restart
from execd.config import schema as config
from execd.sentinel.risk import Risk
from execd.service.liveness import Liveness, beating
from execd.service.notify import Notifier, watchdog_seconds
from tests.helpers import write_config

# ---------------------------------------------------------------- notify


def receiver(abstract: bool) -> tuple[socket.socket, str]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.settimeout(2)
    if abstract:
        name = f"execd-unit-{uuid.uuid4().hex}"
        sock.bind("\0" + name)
        return sock, "@" + name
    path = os.path.join(tempfile.gettempdir(), f"execd-unit-{uuid.uuid4().hex[:12]}")
    sock.bind(path)
    return sock, path


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_each_message_is_one_datagram_of_key_value_lines(abstract: bool) -> None:
    sock, address = receiver(abstract)
    notifier = Notifier({"NOTIFY_SOCKET": address})
    try:
        assert notifier.enabled
        assert notifier.ready("running\nfine")
        assert sock.recv(4096) == b"READY=1\nSTATUS=running fine"
        assert notifier.reloading("reloading x")
        assert sock.recv(4096) == b"RELOADING=1\nSTATUS=reloading x"
        assert notifier.stopping("draining")
        assert sock.recv(4096) == b"STOPPING=1\nSTATUS=draining"
        assert notifier.watchdog()
        assert sock.recv(4096) == b"WATCHDOG=1"
        assert notifier.status("s")
        assert sock.recv(4096) == b"STATUS=s"
    finally:
        notifier.close()
        sock.close()
        if not abstract:
            os.unlink(address)


def test_without_a_socket_nothing_is_sent_and_nothing_fails(tmp_path: Path) -> None:
    assert not Notifier({}).enabled
    assert not Notifier({}).ready("x")
    assert not Notifier({"NOTIFY_SOCKET": "relative/name"}).enabled
    gone = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    assert gone.enabled
    assert not gone.watchdog()
    assert gone.dropped == 1 and gone.last_error is not None
    assert "FileNotFoundError" in gone.last_error or "ConnectionRefusedError" in gone.last_error


def test_a_full_manager_queue_drops_instead_of_blocking() -> None:
    """A service manager that does not read never blocks the daemon: notifications are dropped and
    counted.
    """
    sock, address = receiver(abstract=True)
    notifier = Notifier({"NOTIFY_SOCKET": address})
    try:
        sent = [notifier.watchdog() for _ in range(5000)]  # nobody reads: the queue fills
        assert sent[0] and not sent[-1]
        assert notifier.dropped == sent.count(False) > 0
    finally:
        notifier.close()
        sock.close()


def test_watchdog_seconds_reads_usec_and_honours_the_pid() -> None:
    me = str(os.getpid())
    assert watchdog_seconds({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert watchdog_seconds({"WATCHDOG_USEC": "600000", "WATCHDOG_PID": me}) == 0.6
    assert watchdog_seconds({"WATCHDOG_USEC": "600000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_seconds({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_seconds({"WATCHDOG_USEC": "soon"}) is None
    assert watchdog_seconds({}) is None


# ---------------------------------------------------------------- liveness


def test_an_actor_is_stuck_only_while_working_without_a_beat() -> None:
    live = Liveness()
    reader, writer = live.pulse("reader"), live.pulse("ledger")
    assert live.pulse("reader") is reader
    assert live.stuck(0.0, after=1.0) == {}
    reader.busy()                        # took a file at t=0
    assert live.stuck(0.5, after=1.0) == {}
    assert live.stuck(1.6, after=1.0) == {"reader": 1.1}
    reader.busy()                        # a chunk: progress
    assert live.stuck(2.0, after=1.0) == {}
    reader.rest()                        # waiting for the next file
    assert live.stuck(10.0, after=1.0) == {}
    assert live.stuck(20.0, after=1.0) == {}   # idle for ever is fine
    writer.busy()
    writer.rest()
    writer.busy()
    assert live.stuck(21.0, after=1.0) == {}
    assert live.stuck(22.5, after=1.0) == {"ledger": 1.5}


async def test_beating_marks_waiting_and_working_around_a_real_stream() -> None:
    live = Liveness()
    pulse = live.pulse("router")
    send, receive = anyio.create_memory_object_stream[int](1)
    seen: list[tuple[int, bool]] = []

    async def actor() -> None:
        async with receive:
            async for item in beating(receive, pulse):
                seen.append((item, pulse.idle))

    async with anyio.create_task_group() as tg:
        tg.start_soon(actor)
        await anyio.wait_all_tasks_blocked()
        assert pulse.idle and pulse.beats == 1
        async with send:
            await send.send(7)
            await anyio.wait_all_tasks_blocked()
    assert seen == [(7, False)]
    assert pulse.idle and pulse.beats == 3  # rest, busy (took 7), rest (then the end)
    plain = anyio.create_memory_object_stream[int](1)[1]
    assert beating(plain, None) is plain
    plain.close()


# ---------------------------------------------------------------- reload


def loaded(tmp_path: Path, **overrides: object) -> config.Config:
    return config.load(write_config(tmp_path, **overrides)).config


def test_changed_keys_are_dotted_and_sorted(tmp_path: Path) -> None:
    old = loaded(tmp_path / "a")
    new = loaded(tmp_path / "a", level="error",
                 risk='signatures = "none"\n[risk.limits]\nmax_order_notional = "5"\n')
    assert changed_keys(old, old) == []
    assert changed_keys(old, new) == ["log.level", "risk.limits.max_order_notional"]
    assert needs_restart(changed_keys(old, new)) == []
    assert changes(old, new) == {"log.level": ["warning", "error"],
                                 "risk.limits.max_order_notional": [None, "5"]}


def test_changed_values_never_show_a_secret(tmp_path: Path) -> None:
    old = loaded(tmp_path / "a", risk='signatures = "none"\nkey_file = "/etc/a"')
    new = loaded(tmp_path / "a", risk='signatures = "none"\nkey_file = "/etc/b"')
    assert changes(old, new) == {"risk.key_file": ["***", "***"]}


def test_what_needs_a_restart_says_why(tmp_path: Path) -> None:
    old = loaded(tmp_path / "a")
    moved = loaded(tmp_path / "b", level="warning")   # other lakehouse, ledger and socket
    refused = needs_restart(changed_keys(old, moved))
    assert "daemon.ledger_dir: paths and polling are fixed at start-up" in refused
    assert "control.socket: the control socket is bound at start-up" in refused
    assert all(not line.startswith("log.") for line in refused)
    assert needs_restart(["risk.limits.max_orders", "venues.x.limits.cooldown",
                          "risk.crisis_regimes", "venues.x.limits.equity"]) == [
        "risk.limits.max_orders: pacing is rebuilt from the ledger at start-up only",
        "venues.x.limits.cooldown: pacing is rebuilt from the ledger at start-up only",
        "risk.crisis_regimes: the regime read when regime.json cannot be is fixed at start-up"]
    assert needs_restart(["venues.kraken"]) == [
        "venues.kraken: the set of venues is fixed at start-up"]
    assert needs_restart(["venues.x.ccxt.rate_limit_ms", "venues.x.ccxt.timeout_ms",
                          "risk.key_file", "queues.ledger"]) == [
        "venues.x.ccxt.rate_limit_ms: venues, planes, adapters, exchanges and credentials "
        "are fixed at start-up",
        "risk.key_file: the signing key is read once at start-up",
        "queues.ledger: stream capacities are fixed at start-up"]


def test_risk_reconfigure_keeps_positions_pending_and_pacing(tmp_path: Path) -> None:
    paced = 'signatures = "none"\n[risk.limits]\nmax_orders = {n}\nrate_window = 100\n'
    old = loaded(tmp_path, risk=paced.format(n=3))
    risk = Risk(old)
    venue = risk.venues["binance"]
    assert venue.rate is not None
    for now in (1, 2, 3):
        assert venue.rate.take(now) is None
    assert venue.rate.take(4) is not None            # 3 per 100: full
    risk.hold("binance", "BTC/USDT", "buy", Decimal("2"))
    risk.reconfigure(loaded(tmp_path, risk=paced.format(n=4)))
    venue = risk.venues["binance"]
    assert venue.rate is not None
    assert list(venue.rate.sent) == [1, 2, 3]        # history kept under the new limit
    assert venue.rate.take(5) is None                # a fourth now fits
    assert venue.rate.take(6) is not None
    assert risk.book.venue("binance").position("BTC/USDT").pending_buy == Decimal("2")
    risk.reconfigure(loaded(tmp_path, risk=paced.format(n=2)))
    rate = risk.venues["binance"].rate
    assert rate is not None and list(rate.sent) == [3, 5]  # the newest two
