"""The outcome-settings digest: the same config digests to the same bytes as it always has.

A ledger's ``start`` record carries this digest; a config must never digest differently
from the revision that wrote its ledgers, and settings that cannot change an outcome
(sizes, paths, logging) must never change it.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from execd.config import schema as config
from execd.config.digest import outcome_settings_sha256, settings_sha256
from tests.helpers import ROOT

# What main computed before the digest read the key declarations (commit 8798cea).
SHIPPED = {
    "execd.toml": "14a9492d49b808515d01da3433692899441f62854d4b4e38e8e6654693afebbf",
    "live.example.toml": "a4f341ed0bd5e594021234a8a8a943affdb5ab8b073c6523d6d42e730e5f4558",
}

# A config that uses each kind of digested key: a ccxt table (a key added after the
# first release) with options, confirm_live set, pacing, symbols, a stub, governance.
EVERY_KIND = """
[daemon]
lakehouse = "var/l"
ledger_dir = "var/g"

[clock]
kind = "wall"

[input]
max_line_bytes = 4096

[governance]
enforce = true

[risk]
signatures = "none"
crisis_regimes = ["CRISIS", "PANIC"]

[risk.limits]
max_order_notional = "250000"
failure_limit = 2
failure_window = 3
cooldown = 4

[venues.x]
plane = "live"
adapter = "ccxt"
confirm_live = true

[venues.x.ccxt]
exchange = "binance"
credentials_env = "X"
options = {defaultType = "spot", n = 3}
fee_reads = 2

[venues.s]
plane = "live"
adapter = "stub"
stub_result = "fail"

[venues.a]
plane = "paper"

[venues.a.limits]
max_orders = 3
rate_window = 9

[venues.a.symbols."BTC/USDT"]
max_asset_exposure = "2.5"
price_band_bps = 7
"""
EVERY_KIND_DIGEST = "9cdcb40507df5172f144ac9c8dba72855ab2d4029ba6b34ddef4d183e73be81c"


def shipped() -> config.Config:
    return config.load(ROOT / "config" / "execd.toml").config


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_the_shipped_configs_digest_as_they_always_did(name: str) -> None:
    assert outcome_settings_sha256(config.load(ROOT / "config" / name).config) == SHIPPED[name]


def test_a_config_with_every_kind_of_key_digests_as_it_always_did(tmp_path: Path) -> None:
    path = tmp_path / "execd.toml"
    path.write_text(EVERY_KIND)
    assert outcome_settings_sha256(config.load(path).config) == EVERY_KIND_DIGEST


def test_sizes_paths_logging_and_endpoints_leave_the_digest_alone() -> None:
    base = shipped()
    replace = msgspec.structs.replace
    others = [
        replace(base, daemon=config.DaemonConfig("elsewhere/l", "elsewhere/g", 7, 0)),
        replace(base, queues=config.QueueConfig(1, 2, 3, 4, 5, 6)),
        replace(base, batches=config.BatchConfig(4096, 1, 1)),
        replace(base, ledger=config.LedgerConfig(4096, 0, 1_000)),
        replace(base, log=config.LogConfig("debug", "summary")),
        replace(base, control=config.ControlConfig("x.sock", group_access=True)),
        replace(base, governance=replace(base.governance, ledger_dir="elsewhere")),
        replace(base, metrics=config.MetricsConfig("127.0.0.1:9464")),
    ]
    for other in others:
        assert outcome_settings_sha256(other) == SHIPPED["execd.toml"]


def test_settings_that_decide_outcomes_change_the_digest() -> None:
    base = shipped()
    replace = msgspec.structs.replace
    binance = base.venues["binance"]
    others = [
        replace(base, clock=config.ClockConfig("wall")),
        replace(base, input=config.InputConfig(max_context_bytes=4096)),
        replace(base, risk=replace(base.risk, crisis_regimes=("PANIC",))),
        replace(base, risk=replace(base.risk, limits=config.VenueLimits(cooldown=3))),
        replace(base, governance=replace(base.governance, require_plan=True)),
        replace(base, venues={**base.venues, "binance": replace(binance, symbols={})}),
        replace(base, venues={**base.venues, "binance": replace(
            binance, limits=config.VenueLimits(equity=Decimal("1")))}),
        replace(base, venues={**base.venues, "kraken": binance}),
        # Added after the first release: digested once set.
        replace(base, venues={**base.venues, "binance": replace(binance, confirm_live=True)}),
    ]
    digests = {outcome_settings_sha256(other) for other in others}
    assert len(digests) == len(others)
    assert SHIPPED["execd.toml"] not in digests


@pytest.mark.parametrize("name", ["desk.symbols", "x.confirm_live", "q.queues", "*"])
def test_a_venue_named_like_a_key_is_digested_by_its_own_keys(tmp_path: Path, name: str) -> None:
    """The digest walks the schema, never a dotted string: a venue's name, dots and all,
    cannot move its keys in or out of the digest (keys.find's rule, kept here too)."""
    def digest(text: str) -> str:
        path = tmp_path / "c.toml"
        path.write_text(text)
        return outcome_settings_sha256(config.load(path).config)

    base = ('[daemon]\nlakehouse = "l"\nledger_dir = "g"\n[risk]\nsignatures = "none"\n'
            f'[venues."{name}"]\nplane = "paper"\n')
    assert digest(base + "[queues]\nsentinel = 9\n") == digest(base)
    assert digest(base.replace('"paper"', '"live"\nadapter = "stub"')) != digest(base)
    assert digest(base + f'[venues."{name}".limits]\nequity = "5"\n') != digest(base)


def test_the_policy_file_is_digested_by_its_rules_not_its_path_or_layout(
        tmp_path: Path) -> None:
    loaded = config.load(ROOT / "config" / "execd.toml")
    assert loaded.policy is not None
    with_policy = settings_sha256(loaded)
    # The settings alone digest as they always did; the policy's bytes change the digest.
    assert outcome_settings_sha256(loaded.config) == SHIPPED["execd.toml"] != with_policy
    moved = tmp_path / "elsewhere.toml"
    moved.write_bytes((ROOT / "config" / "policies.toml").read_bytes())
    text = (ROOT / "config" / "execd.toml").read_text().replace(
        'file = "config/policies.toml"', f'file = "{moved}"')
    (tmp_path / "execd.toml").write_text(text)
    assert settings_sha256(config.load(tmp_path / "execd.toml")) == with_policy
    moved.write_bytes(moved.read_bytes() + b"\n# a comment changes no rule\n")
    assert settings_sha256(config.load(tmp_path / "execd.toml")) == with_policy
    moved.write_text(moved.read_text().replace("slices = 3", "slices = 4"))
    assert settings_sha256(config.load(tmp_path / "execd.toml")) != with_policy
