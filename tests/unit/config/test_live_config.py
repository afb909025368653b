"""The shipped live configs agree with the unit and with the live plane's rules."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from execd.config import schema as config
from tests.helpers import ROOT


def venue_credentials() -> str:
    """The prefix under which the unit loads venue credentials (LoadCredential=ID:DIR)."""
    unit = (ROOT / "systemd" / "execd.service").read_text()
    [prefix] = re.findall(r"^LoadCredential=(venue[^:]*):/etc/execd/credentials/venues$",
                          unit, re.MULTILINE)
    return prefix


def test_the_live_example_names_the_credential_the_unit_loads() -> None:
    # systemd loads the directory recursively and names each file PREFIX_NAME.
    loaded = config.load(ROOT / "config" / "live.example.toml").config
    for name, venue in loaded.venues.items():
        if venue.ccxt is not None:
            assert venue.ccxt.credentials_credential == f"{venue_credentials()}_{name}"


def test_the_live_example_runs_on_the_logical_clock_and_sends_once() -> None:
    loaded = config.load(ROOT / "config" / "live.example.toml").config
    assert loaded.clock.kind == "logical"
    table = loaded.venues["binance"].ccxt
    assert table is not None
    assert (table.send_attempts, table.resend_window_ms) == (1, 0)
    # The unit's TimeoutStopSec must cover the drain bound.
    unit = (ROOT / "systemd" / "execd.service").read_text()
    [stop] = re.findall(r"^TimeoutStopSec=(\d+)$", unit, re.MULTILINE)
    assert table.drain_timeout_ms < int(stop) * 1000


def test_the_production_configs_live_steps_load_once_uncommented(tmp_path: object) -> None:
    # deploy/execd.toml carries the going-live steps as comments: applied as written,
    # they must give a valid config naming the unit's credential.
    text = (ROOT / "deploy" / "execd.toml").read_text()
    block = text[text.index("# 3. Replace the [venues.binance] table"):]
    lines = [line[len("#      "):] for line in block.splitlines()
             if line.startswith("#      ") and not line.startswith("#        ")]
    live = tomllib.loads("\n".join(lines))
    assert live["venues"]["binance"]["ccxt"]["credentials_credential"] == (
        f"{venue_credentials()}_binance")
    assert "send_attempts" not in live["venues"]["binance"]["ccxt"]


LIVE_TEXT = """[daemon]
lakehouse = "l"
ledger_dir = "g"
[risk]
signatures = "none"
[venues.b]
plane = "live"
adapter = "ccxt"
[venues.b.ccxt]
exchange = "binance"
credentials_env = "BIN"
"""


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "execd.toml"
    path.write_text(text)
    with pytest.raises(config.ConfigError) as caught:
        config.load(path)
    return [str(p).removeprefix(f"{path}: ") for p in caught.value.problems]


def test_a_problem_line_never_prints_a_secret(tmp_path: Path) -> None:
    """These lines reach the terminal, a reload's reply and log, and systemd's STATUS:
    a secret's value (ccxt.options, a URL's password) must never be in them."""
    assert _problems(tmp_path, LIVE_TEXT + 'options = "zqLEAKzq"\n') == [
        "venues.b.ccxt.options: expected a table, found a string"]
    assert _problems(tmp_path, LIVE_TEXT + 'base_url = "https://u:zqLEAKzq@h.example/x"\n') == [
        "venues.b.ccxt.base_url: expected a string matching ^https?://[^/]+$ or nothing, "
        "found a URL with a user name or password (not shown)"]
    # A reference is no secret: the operator needs to see what was wrong with it.
    assert _problems(tmp_path, LIVE_TEXT.replace('"BIN"', '"b-in"')) == [
        "venues.b.ccxt.credentials_env: expected a string matching ^[A-Z_][A-Z0-9_]*$ or "
        "nothing, found 'b-in'"]


def test_a_base_url_with_a_user_or_password_is_refused(tmp_path: Path) -> None:
    """ccxt names the URL in its errors, which reach the logs and the ledger's outcomes:
    a password there would be written down. Credentials have their own keys."""
    for url in ("https://u:zqLEAKzq@h.example", "http://zqLEAKzq@h.example:8080"):
        found = _problems(tmp_path, LIVE_TEXT + f'base_url = "{url}"\n')
        assert found == [
            "venues.b.ccxt.base_url: expected an http(s) URL with no user name or password "
            "(credentials go in credentials_file, credentials_env or credentials_credential), "
            "found a URL with a user name or password (not shown)"]
    path = tmp_path / "ok.toml"
    path.write_text(LIVE_TEXT + 'base_url = "https://testnet.binance.vision"\n')
    assert config.load(path).config.venues["b"].ccxt is not None


def test_a_problem_line_names_a_dotted_venue_whole(tmp_path: Path) -> None:
    """``venues.x.confirm_live.ccxt.exchange`` could be venue "x" or "x.confirm_live"."""
    text = LIVE_TEXT.replace("venues.b", 'venues."x.confirm_live"').replace(
        'exchange = "binance"', 'exchange = "Binance!"') + (
        '[venues."x.confirm_live".symbols."ETH.PERP"]\nmax_order_notional = "0"\n')
    assert _problems(tmp_path, text) == [
        'venues."x.confirm_live".ccxt.exchange: expected a string matching ^[a-z0-9_]+$, '
        "found 'Binance!'"]
    fixed = _problems(tmp_path, text.replace('"Binance!"', '"binance"'))
    assert fixed == ['venues."x.confirm_live".symbols."ETH.PERP".max_order_notional: '
                     "expected a positive decimal number, found 0"]
