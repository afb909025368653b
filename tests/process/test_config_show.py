"""``execd config show`` and ``execd config diff`` as real processes, the diff against a
real running daemon (the in-process half is tests/unit/config/test_resolved.py)."""

from __future__ import annotations

import json
import socket
import subprocess
import tomllib
from pathlib import Path

from tests.helpers import EXECD, ROOT, control_socket, ctl, start_daemon, started, stop, wait_for
from tests.live import write_live_config

# Never shown: a key file's bytes, which execd reads at start-up. The file's path, which
# says where the key is kept, is shown (resolved.py).
MARKER = "zqsecretzq"


def execd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EXECD, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=60, check=False)


def raw_config_reply(sock: Path) -> bytes:
    """The daemon's answer to the ``config`` control command, as the bytes it sent."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(30)
        client.connect(str(sock))
        client.sendall(b'{"command": "config"}\n')
        data = b""
        while not data.endswith(b"\n"):
            chunk = client.recv(65536)
            assert chunk, data
            data += chunk
    return data


def test_diff_against_the_running_daemon(tmp_path: Path) -> None:
    key = tmp_path / "signing.key"
    key.write_text(f"{MARKER}-{MARKER}-{MARKER}\n")
    path, process = started(tmp_path, risk=f'signatures = "none"\nkey_file = "{key}"')
    try:
        wait_for(lambda: ctl(path, "status").returncode == 0)
        # The daemon answers its config masked: no secret crosses the socket.
        raw = raw_config_reply(control_socket(tmp_path))
        assert MARKER.encode() not in raw
        reply = json.loads(raw)
        assert reply["ok"] and reply["file"] == str(path)
        assert reply["config"]["risk"]["key_file"] == str(key)
        assert reply["config"]["daemon"]["poll_interval_ms"] == 20

        same = execd("config", "diff", str(path), "--config", str(path))
        assert same.returncode == 0, same.stderr
        assert same.stdout.splitlines() == [
            f"no differences between the running daemon's config ({path}) and {path}"]

        text = path.read_text()
        edited = tmp_path / "edited.toml"
        edited.write_text(text.replace("poll_interval_ms = 20", "poll_interval_ms = 200")
                          .replace('level = "warning"', 'level = "error"')
                          .replace("[venues.alpaca]", "[venues.kraken]"))
        diff = execd("config", "diff", str(edited), "--config", str(path))
        assert diff.returncode == 1, diff.stderr
        venues = "needs a restart: the set of venues is fixed at start-up"
        assert diff.stdout.splitlines()[:-2] == [
            "daemon.poll_interval_ms: 20 -> 200 (needs a restart: paths and polling are "
            "fixed at start-up)",
            'log.level: "warning" -> "error" (reload applies it)',
            f"venues.alpaca: removed ({venues})",
            f"venues.kraken: added ({venues})",
        ]
        assert diff.stdout.splitlines()[-2:] == [
            f"4 difference(s) from the running daemon's config ({path}) to {edited}: 3 "
            "need(s) a restart, so a reload would refuse them all (a reload is all or "
            "nothing)", f"(a reload re-reads {path}, not {edited})"]
        assert MARKER not in diff.stdout + diff.stderr

        # A change a reload applies: the diff says so, the reload agrees, and then the
        # daemon's config is the file's.
        path.write_text(text.replace('level = "warning"', 'level = "error"'))
        diff = execd("config", "diff", str(path), "--config", str(path))
        assert diff.returncode == 1
        assert diff.stdout.splitlines()[0] == 'log.level: "warning" -> "error" (reload applies it)'
        assert "a reload applies them all" in diff.stdout.splitlines()[1]
        reload = ctl(path, "reload", "--reason", "quieter logs", "--actor", "alice")
        assert reload.returncode == 0, reload.stderr
        assert "log.level" in reload.stdout
        assert execd("config", "diff", str(path), "--config", str(path)).returncode == 0

        # A bad FILE: its problems, exit 2, and the daemon is not even asked.
        bad = tmp_path / "bad.toml"
        bad.write_text(text.replace("poll_interval_ms = 20", "poll_interval_ms = 0"))
        refused = execd("config", "diff", str(bad), "--config", str(path))
        assert refused.returncode == 2
        assert refused.stderr.splitlines() == [
            f"{bad}: daemon.poll_interval_ms: expected an integer >= 1 <= 60000, found int 0"]
        assert refused.stdout == ""
    finally:
        stop(process)
    gone = execd("config", "diff", str(path), "--config", str(path))
    assert gone.returncode == 1
    assert gone.stderr.strip() == (
        f"execd ctl: no daemon is listening on {control_socket(tmp_path)}")


def test_show_as_a_process_masks_and_reads_back(tmp_path: Path) -> None:
    key = tmp_path / "signing.key"
    path = tmp_path / "execd.toml"
    path.write_text(f'[daemon]\nlakehouse = "l"\nledger_dir = "g"\n[risk]\nkey_file = "{key}"\n'
                    '[venues.binance]\nplane = "live"\nadapter = "ccxt"\n'
                    f'[venues.binance.ccxt]\nexchange = "binance"\noptions = {{x = "{MARKER}"}}\n'
                    'credentials_env = "BINANCE"\n')
    for fmt in ("toml", "json"):
        shown = execd("config", "show", "-c", str(path), "--format", fmt)
        assert shown.returncode == 0, shown.stderr
        assert MARKER not in shown.stdout
        table = tomllib.loads(shown.stdout) if fmt == "toml" else json.loads(shown.stdout)
        assert table["risk"]["key_file"] == str(key)
        assert table["venues"]["binance"]["ccxt"]["options"] == "***"
        assert table["venues"]["binance"]["ccxt"]["credentials_env"] == "BINANCE"
        assert table["control"]["timeout_ms"] == 10_000
    missing = execd("config", "show", "-c", str(tmp_path / "nope.toml"))
    assert missing.returncode == 2
    assert missing.stderr.startswith(f"{tmp_path / 'nope.toml'}: (file): expected")


def test_a_reload_never_moves_a_dotted_venue_to_another_plane(tmp_path: Path) -> None:
    """A venue named "desk.symbols" once had its plane judged as a symbol's limits: the
    reload was applied and the venue's later intents went on another adapter. The diff
    and the reload must both say the plane needs a restart, and the daemon must keep it."""
    dotted = '[venues."desk.symbols"]\nplane = "paper"\n'
    path, process = started(tmp_path, extra=dotted)
    try:
        wait_for(lambda: ctl(path, "status").returncode == 0)
        text = path.read_text()
        edited = text.replace(dotted, '[venues."desk.symbols"]\nplane = "live"\n'
                                      'adapter = "stub"\nstub_result = "fail"\n')
        path.write_text(edited)
        diff = execd("config", "diff", str(path), "--config", str(path))
        assert diff.returncode == 1, diff.stderr
        venue = "venues, planes, adapters, exchanges and credentials are fixed at start-up"
        assert diff.stdout.splitlines()[:3] == [
            f'venues."desk.symbols".plane: "paper" -> "live" (needs a restart: {venue})',
            f'venues."desk.symbols".adapter: unset -> "stub" (needs a restart: {venue})',
            f'venues."desk.symbols".stub_result: "fill" -> "fail" (needs a restart: {venue})']
        reload = ctl(path, "reload", "--reason", "x", "--actor", "alice")
        assert reload.returncode == 1
        assert f'venues."desk.symbols".plane: {venue}' in reload.stderr
        path.write_text(text)
        assert execd("config", "diff", str(path), "--config", str(path)).returncode == 0
    finally:
        stop(process)


def test_diff_never_calls_a_secret_it_cannot_compare_equal(tmp_path: Path) -> None:
    """ccxt.options may hold an exchange's keys, so the daemon answers "***" for it: a
    diff once said "no differences" (exit 0) while the two files' options differed.
    The venue here never connects (nothing listens on its URL): the socket answers anyway."""
    path = write_live_config(tmp_path, "http://127.0.0.1:9")
    path.write_text(path.read_text().replace(
        "backlog = 16\n", f"backlog = 16\noptions = {{defaultType = '{MARKER}'}}\n"))
    process = start_daemon(path, tmp_path / "daemon.log")
    try:
        wait_for(lambda: control_socket(tmp_path).exists() or process.poll() is not None)
        assert process.poll() is None, (tmp_path / "daemon.log").read_text()
        other = tmp_path / "other.toml"
        other.write_text(path.read_text().replace(MARKER, "zqotherzq"))
        for file in (path, other):
            diff = execd("config", "diff", str(file), "--config", str(path))
            assert diff.returncode == 1, diff.stderr
            assert diff.stdout.splitlines() == [
                "venues.binance.ccxt.options: not compared (a secret, set on both sides: its "
                "value never leaves the daemon)",
                f"no differences in the keys compared between the running daemon's config "
                f"({path}) and {file}, but 1 secret(s) could not be compared"]
            assert MARKER not in diff.stdout + diff.stderr
    finally:
        stop(process)
