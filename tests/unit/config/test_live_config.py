"""The shipped live configs agree with the unit and with the live plane's rules."""

from __future__ import annotations

import re
import tomllib

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
