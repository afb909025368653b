"""Which config file a command reads (execd.cli.configfile.choose), and what --help and a
missing file say about it, through the real parser and ``main``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from execd.cli import configfile
from execd.cli.configfile import Choice, choose
from execd.cli.main import main, parser
from tests.config_texts import GOOD
from tests.helpers import ROOT

INSTALLED = "/etc/execd/execd.toml"


def nothing(path: str) -> bool:
    return False


def only_installed(path: str) -> bool:
    return path == INSTALLED


def test_the_option_wins_over_everything() -> None:
    environ = {"EXECD_CONFIG": "/srv/env.toml"}
    assert choose("mine.toml", environ, only_installed) == Choice("mine.toml", "from --config")


def test_then_execd_config_even_when_the_installed_file_exists() -> None:
    assert choose(None, {"EXECD_CONFIG": "/srv/env.toml"}, only_installed) == \
        Choice("/srv/env.toml", "from EXECD_CONFIG")


def test_an_empty_execd_config_is_not_set() -> None:
    assert choose(None, {"EXECD_CONFIG": ""}, only_installed) == Choice(INSTALLED, "installed")


def test_then_the_installed_file_when_it_exists() -> None:
    assert choose(None, {}, only_installed) == Choice(INSTALLED, "installed")


def test_then_the_checkout_s() -> None:
    assert choose(None, {}, nothing, checkout="config/execd.toml") == \
        Choice("config/execd.toml", "the checkout's")


def test_execd_etc_stands_in_for_etc_execd() -> None:
    staged = "/stage/etc/execd/execd.toml"
    assert choose(None, {"EXECD_ETC": "/stage/etc/execd"}, lambda p: p == staged) == \
        Choice(staged, "installed")
    # Only the stand-in is looked at: the real one is not.
    assert choose(None, {"EXECD_ETC": "/stage/etc/execd"}, only_installed).why == \
        "the checkout's"


def test_from_this_checkout_the_default_is_its_config_wherever_the_command_runs() -> None:
    assert Path(configfile.CHECKOUT_CONFIG) == ROOT / "config" / "execd.toml"


def _config_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as done:
        parser().parse_args([*command, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    return text.split("--config FILE, -c FILE", 1)[1] if "--config FILE, -c FILE" in text \
        else text.split("-c FILE, --config FILE", 1)[1]


@pytest.mark.parametrize("command", [["run"], ["replay"], ["ledger", "tail"], ["ledger", "verify"],
                                     ["ctl", "status"], ["plan", "list"], ["submit"],
                                     ["config", "check"]])
def test_help_names_the_file_it_will_read_and_why(
        command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COLUMNS", "1000")  # argparse wraps help, also at hyphens
    monkeypatch.delenv("EXECD_CONFIG", raising=False)
    monkeypatch.setenv("EXECD_ETC", str(tmp_path))
    assert f"(default: {configfile.CHECKOUT_CONFIG} (the checkout's)" in \
        _config_help(command, capsys)
    (tmp_path / "execd.toml").write_text(GOOD)
    assert f"(default: {tmp_path / 'execd.toml'} (installed)" in _config_help(command, capsys)
    monkeypatch.setenv("EXECD_CONFIG", "/srv/execd.toml")
    assert "(default: /srv/execd.toml (from EXECD_CONFIG)" in _config_help(command, capsys)


def test_the_config_named_by_execd_config_is_the_one_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "env.toml"
    path.write_text(GOOD)
    monkeypatch.setenv("EXECD_CONFIG", str(path))
    assert main(["config", "check"]) == 0
    assert capsys.readouterr().out.startswith(f"ok: {path} (")


def test_a_missing_explicit_config_is_one_file_expected_found_line_and_exit_2(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.toml"
    assert main(["config", "check", "--config", str(missing)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"{missing}: (file): expected a readable TOML file, found No such file or directory"]
    monkeypatch.setenv("EXECD_CONFIG", str(missing))
    assert main(["config", "check"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"{missing}: (file): expected a readable TOML file, found No such file or directory"]


def test_a_missing_default_says_where_else_it_looked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("EXECD_CONFIG", raising=False)
    monkeypatch.setenv("EXECD_ETC", str(tmp_path))
    monkeypatch.setattr(configfile, "CHECKOUT_CONFIG", str(tmp_path / "absent.toml"))
    assert main(["config", "check"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"{tmp_path / 'absent.toml'}: (file): expected a readable TOML file, found No such "
        "file or directory",
        f"execd: no --config given, EXECD_CONFIG not set, {tmp_path / 'execd.toml'} absent "
        "(see --help)"]


def _broken(kind: str, etc: Path) -> None:
    installed = etc / "execd.toml"
    if kind == "a dangling link":
        installed.symlink_to(etc / "nowhere.toml")
    elif kind == "a link loop":
        installed.symlink_to(etc / "loop.toml")
        (etc / "loop.toml").symlink_to(installed)
    elif kind == "a FIFO":
        os.mkfifo(installed)
    else:
        installed.mkdir()


@pytest.mark.parametrize(("kind", "found"), [
    ("a dangling link", "expected a readable TOML file, found No such file or directory"),
    ("a link loop", "expected a readable TOML file, found Too many levels of symbolic links"),
    ("a FIFO", "expected a regular TOML file, found a FIFO"),
    ("a directory", "expected a regular TOML file, found a directory")])
def test_an_installed_config_that_is_there_but_broken_is_reported_never_passed_over(
        kind: str, found: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The installed file exists as a directory entry: it is the one chosen, and what is
    wrong with it is the one line printed (exit 2), rather than the checkout's good
    config being read in its place."""
    monkeypatch.setenv("COLUMNS", "1000")  # argparse wraps help, also at hyphens
    monkeypatch.delenv("EXECD_CONFIG", raising=False)
    monkeypatch.setenv("EXECD_ETC", str(tmp_path))
    _broken(kind, tmp_path)
    installed = tmp_path / "execd.toml"
    assert main(["config", "check"]) == 2
    assert capsys.readouterr().err.splitlines() == [f"{installed}: (file): {found}"]
    assert f"(default: {installed} (installed)" in _config_help(["config", "check"], capsys)
