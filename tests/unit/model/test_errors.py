"""The one error hierarchy: every exception execd defines is an ExecdError with its exit status."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest

import execd
from execd.cli.exits import status
from execd.model import errors
from execd.model.errors import (
    ConfigError,
    ConfigProblem,
    ExecdError,
    FileRefused,
    ReloadRefused,
)

# Every exception class in execd, by qualified name, and the exit status the CLI must
# give for it (README and execd/cli/main.py: 1 failed, 2 config or command line, 3 the
# ledger cannot be used, 4 not confirmed). A new exception needs a line here.
EXIT_CODES: dict[str, int] = {
    "execd.model.errors.ExecdError": 1,
    "execd.model.errors.ConfigError": 2,
    "execd.model.errors.UsageError": 2,
    "execd.model.errors.ReloadRefused": 1,
    "execd.model.errors.InputError": 1,
    "execd.model.errors.FileRefused": 2,
    "execd.model.errors.NotRegular": 1,
    "execd.model.errors.ClockRegression": 1,
    "execd.model.errors.SubmitError": 1,
    "execd.model.errors.LedgerError": 3,
    "execd.model.errors.LedgerCorrupt": 3,
    "execd.model.errors.LedgerTruncated": 3,
    "execd.model.errors.LedgerArchived": 3,
    "execd.model.errors.IndexUnusable": 3,
    "execd.model.errors.WitnessUnreadable": 3,
    "execd.model.errors.LedgerNotEmpty": 3,
    "execd.model.errors.UnresolvedOrders": 3,
    "execd.model.errors.IndexDamaged": 1,
    "execd.model.errors.RunDamaged": 1,
    "execd.model.errors.LedgerIOError": 1,
    "execd.model.errors.InUse": 1,
    "execd.model.errors.LedgerInUse": 1,
    "execd.model.errors.LakehouseInUse": 1,
    "execd.model.errors.ControlInUse": 1,
    "execd.model.errors.MetricsUnavailable": 1,
    "execd.model.errors.ControlError": 1,
    "execd.model.errors.RequestTooLong": 1,
    "execd.model.errors.Unconfirmed": 4,
    "execd.model.errors.GovernanceError": 1,
    # Private control flow that never leaves its module.
    "execd.model.input._NumberGiven": 1,
    "execd.reader.shell._Stopped": 1,
}
# Outside the hierarchy until the order lifecycle work (issue 13, item 3) removes it.
NOT_YET = frozenset({"execd.venues.ccxt.venue._InDoubt"})


def _all_subclasses(cls: type[BaseException]) -> list[type[BaseException]]:
    found: list[type[BaseException]] = []
    pending = [cls]
    while pending:
        for sub in pending.pop().__subclasses__():
            found.append(sub)
            pending.append(sub)
    return found


def _execd_exceptions() -> dict[str, type[BaseException]]:
    """Every exception class defined in execd, found by importing every module."""
    for info in pkgutil.walk_packages(execd.__path__, "execd."):
        if info.name != "execd.__main__":  # runs the CLI when imported
            importlib.import_module(info.name)
    return {f"{cls.__module__}.{cls.__qualname__}": cls for cls in _all_subclasses(BaseException)
            if cls.__module__.split(".")[0] == "execd"}


def test_every_exception_in_execd_is_an_execd_error_with_its_exit_code() -> None:
    found = _execd_exceptions()
    assert "execd.reader.shell._Stopped" in found  # the walk reaches private ones too
    for name, cls in sorted(found.items()):
        if name in NOT_YET:
            continue
        assert name in EXIT_CODES, f"{name}: a new exception; declare its exit code here"
        assert issubclass(cls, ExecdError), f"{name} is not an ExecdError"
        assert cls.exit_code == EXIT_CODES[name], name
        # The CLI's one mapping gives exactly that status for it.
        assert status(cls.__new__(cls)) == EXIT_CODES[name], name
    assert sorted(set(EXIT_CODES) - set(found)) == []  # no line for a class that is gone


def test_the_hierarchy_is_declared_in_one_module() -> None:
    found = _execd_exceptions()
    private = {"execd.model.input._NumberGiven", "execd.reader.shell._Stopped"}
    outside = {name for name in found if not name.startswith("execd.model.errors.")}
    assert outside - NOT_YET == private


@pytest.mark.parametrize(("cls", "builtin"), [
    (errors.NotRegular, OSError),  # the reader's `except OSError` refuses the file
    (errors.ClockRegression, ValueError),
    (errors.GovernanceError, ValueError),
    (errors.RequestTooLong, ValueError),
    (errors.UsageError, ValueError),  # parse_expect and check_filters said ValueError
    (errors.InUse, RuntimeError),
    (errors.LedgerInUse, RuntimeError),
    (errors.LakehouseInUse, RuntimeError),
    (errors.LedgerIOError, RuntimeError),
])
def test_members_keep_the_builtin_base_they_had(cls: type[ExecdError],
                                                builtin: type[Exception]) -> None:
    assert issubclass(cls, builtin)


def test_families_group_what_the_cli_reports_alike() -> None:
    for cls in (errors.LedgerCorrupt, errors.LedgerTruncated, errors.WitnessUnreadable,
                errors.LedgerNotEmpty, errors.UnresolvedOrders):
        assert issubclass(cls, errors.LedgerError)
    assert not issubclass(errors.LedgerIOError, errors.LedgerError)
    for in_use in (errors.LedgerInUse, errors.LakehouseInUse, errors.ControlInUse):
        assert issubclass(in_use, errors.InUse)
    for given in (errors.FileRefused, errors.NotRegular, errors.ClockRegression,
                  errors.SubmitError):
        assert issubclass(given, errors.InputError)
    for control in (errors.RequestTooLong, errors.Unconfirmed):
        assert issubclass(control, errors.ControlError)


def test_messages_are_what_they_were() -> None:
    refused = FileRefused(Path("/k/key"), "a regular file", "a FIFO", missing=False)
    assert str(refused) == "/k/key: expected a regular file, found a FIFO"
    assert (refused.path, refused.expected, refused.found, refused.missing) == (
        "/k/key", "a regular file", "a FIFO", False)
    problems = [ConfigProblem("c.toml", "queues.intake", "an integer >= 1", "0"),
                ConfigProblem("c.toml", "venues", "at least one venue table", "none")]
    config = ConfigError(problems)
    assert str(config) == ("c.toml: queues.intake: expected an integer >= 1, found 0\n"
                           "c.toml: venues: expected at least one venue table, found none")
    assert config.problems == problems
    reload = ReloadRefused(["a: changed", "b: changed"])
    assert str(reload) == "a: changed; b: changed"
    assert reload.problems == ["a: changed", "b: changed"]
    assert str(errors.LedgerCorrupt("seq 3: bad hash")) == "seq 3: bad hash"
