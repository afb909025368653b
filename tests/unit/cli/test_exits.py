"""The CLI's one mapping from exceptions to exit statuses, and how the daemon's end is reported."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from structlog.testing import capture_logs

from execd.cli.exits import daemon_event, daemon_stopped, status
from execd.cli.main import main
from execd.cli.serve import root_cause
from execd.model import errors


@pytest.mark.parametrize(("exc", "code"), [
    (KeyboardInterrupt(), 130),
    (BrokenPipeError(32, "Broken pipe"), 1),
    (FileNotFoundError(2, "No such file or directory"), 1),
    (ConnectionRefusedError(111, "Connection refused"), 1),
    (TimeoutError(), 1),
    (RuntimeError("boom"), 1),
    (ValueError("bad"), 1),
    (errors.ConfigError([]), 2),
    (errors.UsageError("--kind: expected one of start, found 'x'"), 2),
    (errors.FileRefused("k", "a regular file", "a FIFO"), 2),
    (errors.LedgerTruncated("cut"), 3),
    (errors.UnresolvedOrders("open orders"), 3),
    (errors.Unconfirmed("no reply"), 4),
    (errors.GovernanceError("no plan p"), 1),
    (errors.SubmitError("x.jsonl: already in the inbox"), 1),
])
def test_status(exc: BaseException, code: int) -> None:
    assert status(exc) == code


# What `_serve`'s chain of isinstance checks logged and returned before the hierarchy.
@pytest.mark.parametrize(("exc", "event", "code"), [
    (errors.MetricsUnavailable("metrics.listen :1: in use"), "metrics.unavailable", 1),
    (errors.LedgerInUse("another process holds the ledger"), "daemon.in_use", 1),
    (errors.LakehouseInUse("another daemon holds the lakehouse"), "daemon.in_use", 1),
    (errors.ControlInUse("another execd is serving s"), "daemon.in_use", 1),
    (errors.LedgerCorrupt("seq 4: hash mismatch"), "ledger.refused", 3),
    (errors.LedgerTruncated("ends at 3, head says 9"), "ledger.refused", 3),
    (errors.LedgerNotEmpty("not empty"), "ledger.refused", 3),
    (errors.UnresolvedOrders("2 orders"), "ledger.refused", 3),
    (errors.LedgerIOError("ledger write or fsync failed: EIO"), "ledger.io_failed", 1),
])
def test_daemon_stopped_logs_one_event_per_family(exc: errors.ExecdError, event: str,
                                                  code: int) -> None:
    assert daemon_event(exc) == event
    with capture_logs() as logged:
        assert daemon_stopped(exc) == code
    assert [(line["event"], line["log_level"], line["error"]) for line in logged] == [
        (event, "error", str(exc))]


def test_daemon_stopped_by_config_prints_each_problem(capsys: pytest.CaptureFixture[str]) -> None:
    problems = [errors.ConfigProblem("c.toml", "venues.x.confirm_live", "true", "false"),
                errors.ConfigProblem("c.toml", "venues", "no ccxt venues", "['x']")]
    with capture_logs() as logged:
        assert daemon_stopped(errors.ConfigError(problems)) == 2
    assert logged == []
    assert capsys.readouterr().err == (
        "c.toml: venues.x.confirm_live: expected true, found false\n"
        "c.toml: venues: expected no ccxt venues, found ['x']\n")


def test_a_crash_is_logged_with_its_traceback_and_exits_1() -> None:
    for crash in (RuntimeError("boom"), errors.GovernanceError("not one the daemon reports"),
                  errors.FileRefused("k", "a regular file", "a FIFO")):
        with capture_logs() as logged:
            try:
                raise crash  # noqa: TRY301 - the raise gives the exception its traceback
            except Exception as exc:  # noqa: BLE001 - each crash kind, as the daemon meets it
                assert daemon_stopped(exc) == 1  # noqa: PT017 - the report needs a live traceback
        assert [(line["event"], line["error"], line["exc_info"]) for line in logged] == [
            ("daemon.crashed", repr(crash), True)]


def test_ctrl_c_inside_the_daemon_exits_1_without_a_word() -> None:
    with capture_logs() as logged:
        assert daemon_stopped(KeyboardInterrupt()) == 1
    assert logged == []


def test_the_cause_is_found_inside_the_task_groups() -> None:
    group = BaseExceptionGroup("actors", [
        anyio.BrokenResourceError(),
        ExceptionGroup("writer", [anyio.ClosedResourceError(), errors.LedgerIOError("EIO")]),
    ])
    cause = root_cause(group)
    assert type(cause) is errors.LedgerIOError
    with capture_logs():
        assert daemon_stopped(cause) == 1


def test_bad_command_line_values_exit_2(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    ledger = str(tmp_path)
    assert main(["ledger", "verify", "--ledger", ledger, "--expect", "7"]) == 2
    assert capsys.readouterr().err == (
        "--expect: expected SEQ:HASH (a seq, a colon, 64 hex digits), found '7'\n")
    assert main(["ledger", "tail", "--ledger", ledger, "--kind", "nope"]) == 2
    assert capsys.readouterr().err.startswith("--kind: expected one of start, ")


def test_a_damaged_ledger_fails_verify_with_1(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "head.json").write_bytes(b"not json")
    assert main(["ledger", "verify", "--ledger", str(tmp_path)]) == 1
    assert capsys.readouterr().out.startswith(f"FAILED: {tmp_path / 'head.json'}: not a head "
                                              "witness (")
