"""The control socket under abuse, against the real ``execd run`` process.

Idle connections, more of them than the daemon has file descriptors, must neither
stop the daemon nor keep an operator out for longer than the request deadline.
"""

from __future__ import annotations

import json
import resource
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.helpers import (
    EXECD,
    ROOT,
    control_socket,
    count_outcomes,
    ctl,
    drop,
    intent,
    lines,
    stop,
    verify,
    wait_for,
    write_config,
)


def _nofile(limit: int) -> Callable[[], None]:
    def lower() -> None:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    return lower


def started(tmp_path: Path, *, nofile: int | None = None,
            **control: Any) -> tuple[Path, subprocess.Popen[bytes]]:
    """``execd run`` with extra ``[control]`` keys, and its fd limit lowered to ``nofile``."""
    path = write_config(tmp_path)
    sock = control_socket(tmp_path)
    keys = "".join(f"\n{key} = {value}" for key, value in control.items())
    path.write_text(path.read_text().replace(f'socket = "{sock}"', f'socket = "{sock}"{keys}'))
    log = open(tmp_path / "daemon.log", "ab")  # noqa: SIM115 - owned by the process
    process = subprocess.Popen([*EXECD, "run", "--config", str(path)], stdout=log,
                               stderr=subprocess.STDOUT, cwd=ROOT,
                               preexec_fn=_nofile(nofile) if nofile else None)
    log.close()
    wait_for(lambda: sock.exists() or process.poll() is not None)
    assert process.poll() is None, (tmp_path / "daemon.log").read_text()
    return path, process


def events(tmp_path: Path, name: str) -> list[dict[str, Any]]:
    """The daemon's log lines with event ``name``."""
    found = []
    for line in (tmp_path / "daemon.log").read_text().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("event") == name:
                found.append(record)
    return found


def connect(sock: Path) -> socket.socket:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(30)
    client.connect(str(sock))
    return client


def reply_of(client: socket.socket) -> dict[str, Any]:
    """The one reply line the daemon sends on ``client``, then its end of stream."""
    with client, client.makefile("rb") as stream:
        line = stream.readline()
        assert stream.read() == b""
    answer: dict[str, Any] = json.loads(line)
    return answer



def test_more_idle_connections_than_file_descriptors_stop_nothing(tmp_path: Path) -> None:
    # 150 idle clients against 64 descriptors: unbounded, accept() failed with EMFILE
    # and the daemon exited. max_clients is set far above what the limit allows.
    path, process = started(tmp_path, nofile=64, max_clients=1000, request_timeout_ms=1500)
    ledger, sock = tmp_path / "ledger", control_socket(tmp_path)
    try:
        idle = [connect(sock) for _ in range(150)]
        drop(tmp_path / "lakehouse" / "inbox", "0001.jsonl", lines(intent(1)))
        wait_for(lambda: count_outcomes(ledger) == 1)
        lowered = events(tmp_path, "control.max_clients_lowered")
        assert len(lowered) == 1 and lowered[0]["level"] == "warning", lowered
        assert lowered[0]["fd_limit"] == 64 and lowered[0]["max_clients"] == 1000
        capacity = lowered[0]["effective"]
        assert 1 <= capacity <= (64 - lowered[0]["fds_open"]) // 2
        # Those beyond the bound were told "busy" at once; the others hear, once their
        # request deadline passes, that they sent nothing, and give their slot back.
        errors = [reply_of(client)["error"] for client in idle]
        timed_out = "no request within 1.5s (control.request_timeout_ms)"
        assert errors.count(timed_out) >= capacity
        assert {e for e in errors if e != timed_out} == {
            f"busy: {capacity} control clients are connected, the most served at once "
            "(control.max_clients); try again shortly"}
        assert not events(tmp_path, "control.accept_failed")
        status = ctl(path, "status", "--json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["state"] == "ACTIVE"
        assert stop(process) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_a_client_beyond_max_clients_is_refused_busy_at_once(tmp_path: Path) -> None:
    """Control clients beyond control.max_clients never queue up or wait: they are refused busy at
    once.
    """
    path, process = started(tmp_path, max_clients=2, request_timeout_ms=60_000)
    sock = control_socket(tmp_path)
    try:
        first, second = connect(sock), connect(sock)
        # The third is refused without sending anything, while the first two still
        # hold their slots (their deadline is a minute away).
        busy = reply_of(connect(sock))
        assert busy == {"ok": False, "error": "busy: 2 control clients are connected, the "
                        "most served at once (control.max_clients); try again shortly"}
        refused = ctl(path, "status")
        assert refused.returncode == 1 and "refused: busy: 2 control clients" in refused.stderr
        assert events(tmp_path, "control.busy")[0]["level"] == "warning"
        # A client that hangs up frees its slot at once.
        first.close()
        second.close()
        wait_for(lambda: ctl(path, "status").returncode == 0)
        assert stop(process) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_the_unit_raises_the_descriptor_limit_above_what_control_clients_can_take() -> None:
    from execd.config.schema import ControlConfig

    unit = (ROOT / "systemd" / "execd.service").read_text().splitlines()
    limits = [line.split("=", 1)[1] for line in unit if line.startswith("LimitNOFILE=")]
    assert len(limits) == 1, "systemd's default soft limit (1024) is what ran out"
    soft = int(limits[0].split(":")[0])
    assert soft >= 4096 and soft >= 8 * ControlConfig().max_clients


def test_operator_ticks_stay_within_the_ledgers_integer_range(tmp_path: Path) -> None:
    path, process = started(tmp_path)
    ledger, sock = tmp_path / "ledger", control_socket(tmp_path)
    top = 2**63 - 1
    expected = f"tick needs time from 0 to {top} (the ledger's integer range), found "
    try:
        for time, found in ((top + 1, str(top + 1)), (-1, "-1"),
                            (10**4299, "a 4300-digit number")):
            client = connect(sock)
            client.sendall(b'{"command":"tick","actor":"a","time":%d}\n' % time)
            assert reply_of(client) == {"ok": False, "error": expected + found}
        client = connect(sock)
        client.sendall(b'{"command":"tick","actor":"a","time":1%s}\n' % (b"0" * 5000))
        assert reply_of(client)["error"].startswith("bad request: Integer value out of range")
        # The command line refuses the same before it connects.
        over = ctl(path, "tick", str(top + 1), "--actor", "a")
        assert over.returncode == 2 and over.stderr == f"execd ctl: {expected}{top + 1}\n"
        # The largest time is a time like any other, in the ledger and out of it.
        last = ctl(path, "tick", str(top), "--actor", "a")
        assert last.returncode == 0 and f"logical time {top}" in last.stdout, last.stderr
        assert json.loads(ctl(path, "status", "--json").stdout)["logical_time"] == top
        assert stop(process) == 0
    finally:
        if process.poll() is None:
            process.kill()
    verify(ledger)
    tail = subprocess.run([*EXECD, "ledger", "tail", "--ledger", str(ledger), "--kind", "tick"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert tail.returncode == 0 and f"t={top} tick {top} by=a" in tail.stdout


def test_idle_metrics_clients_stop_nothing(tmp_path: Path) -> None:
    """Before: prometheus_client's server took a thread and a descriptor per connection,
    without end or timeout; 55 idle connections with 64 descriptors killed the daemon."""
    import time
    import urllib.request

    path = write_config(tmp_path, level="info",
                        extra='[metrics]\nlisten = "127.0.0.1:0"\nclient_timeout_ms = 500\n')
    log = open(tmp_path / "daemon.log", "ab")  # noqa: SIM115 - owned by the process
    process = subprocess.Popen([*EXECD, "run", "--config", str(path)], stdout=log,
                               stderr=subprocess.STDOUT, cwd=ROOT, preexec_fn=_nofile(64))
    log.close()
    try:
        wait_for(lambda: events(tmp_path, "metrics.listening"))
        host, port = events(tmp_path, "metrics.listening")[0]["address"].rsplit(":", 1)
        idle = []
        for _ in range(150):
            client = socket.create_connection((host, int(port)), timeout=5)
            idle.append(client)
        drop(tmp_path / "lakehouse" / "inbox", "0001.jsonl", lines(intent(1)))
        wait_for(lambda: count_outcomes(tmp_path / "ledger") == 1)
        assert process.poll() is None
        for client in idle:
            client.close()
        time.sleep(0.7)  # the idle ones still served time out
        body = urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10).read()
        assert b'execd_outcomes_total{plane="paper",reason="",status="FILLED"' in body
    finally:
        assert stop(process) == 0
