"""Every config key has exactly one declaration of what it means, and reload obeys it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import msgspec.inspect as mi
import pytest

from execd.app.reload import changes, needs_restart
from execd.config import keys
from execd.config.schema import Config, load
from tests.config_texts import GOOD


def schema_keys(info: mi.StructType, prefix: str = "") -> list[str]:
    """Every key of the schema, walked from msgspec's type info.

    A leaf is a key; so is an optional table (a reload can add or remove it) and an
    entry of a table of named tables (a venue, a symbol), which the walk names ``*``.
    A table that is always there is only the keys inside it.
    """
    found: list[str] = []
    for field in info.fields:
        path = f"{prefix}{field.name}"
        tp = field.type
        tables = [t for t in getattr(tp, "types", ()) if isinstance(t, mi.StructType)]
        if isinstance(tp, mi.StructType):
            found += schema_keys(tp, f"{path}.")
        elif tables:
            [table] = tables
            found += [path, *schema_keys(table, f"{path}.")]
        elif isinstance(tp, mi.DictType) and isinstance(tp.value_type, mi.StructType):
            found += [f"{path}.*", *schema_keys(tp.value_type, f"{path}.*.")]
        else:
            found.append(path)
    return found


INFO = mi.type_info(Config)
assert isinstance(INFO, mi.StructType)
SCHEMA = schema_keys(INFO)
CONCRETE = {path: path.replace("*", "v1") for path in keys.BY_PATH}
PARTS = {path: tuple(concrete.split(".")) for path, concrete in CONCRETE.items()}


def test_the_walk_sees_every_kind_of_key() -> None:
    for path in ("daemon.lakehouse", "metrics", "metrics.listen", "venues.*", "venues.*.ccxt",
                 "venues.*.ccxt.options", "venues.*.symbols.*.price_band_bps",
                 "risk.limits.cooldown", "risk.crisis_regimes"):
        assert path in SCHEMA
    assert "risk.limits" not in SCHEMA
    assert "venues" not in SCHEMA


def test_every_key_is_declared_exactly_once() -> None:
    declared = Counter(key.path for key in keys.KEYS)
    assert [path for path, n in declared.items() if n > 1] == []
    assert [path for path in SCHEMA if path not in declared] == []
    assert [path for path in declared if path not in SCHEMA] == []


def test_each_declaration_is_found_for_its_own_keys() -> None:
    for path, parts in PARTS.items():
        assert keys.find(parts) is keys.BY_PATH[path]


def test_a_key_below_a_declared_one_falls_under_the_longest() -> None:
    options = keys.BY_PATH["venues.*.ccxt.options"]
    assert keys.find(("venues", "x", "ccxt", "options", "defaultType")) is options
    assert keys.find(("venues", "x", "ccxt", "options", "a", "b")) is options
    assert keys.find(("nothing", "like", "this")) is None


@pytest.mark.parametrize("name", ["desk.symbols", "x.confirm_live", "a.ccxt", "*.ccxt",
                                  "v.limits", "okx_options", "APIKEY", "x.ccxt.options"])
def test_a_name_is_one_part_whatever_it_holds(name: str) -> None:
    """A venue's or symbol's name must never move a key under another key's rules: a
    venue "desk.symbols" made its plane reloadable, "x.confirm_live" its ccxt table shown."""
    for path, declared in keys.BY_PATH.items():
        if "*" not in path:
            continue
        parts = tuple(name if p == "*" else p for p in path.split("."))
        assert keys.find(parts) is declared, (name, path)
        assert keys.secret(parts) == declared.secret, (name, path)
        assert keys.split(keys.dotted(parts)) == parts


def test_a_key_is_written_so_that_it_reads_back_to_its_parts() -> None:
    assert keys.dotted(("venues", "binance", "symbols", "BTC/USDT")) == (
        "venues.binance.symbols.BTC/USDT")
    assert keys.dotted(("venues", "desk.symbols", "plane")) == 'venues."desk.symbols".plane'
    for parts in [("a", ""), ("a b", 'q"uote', "back\\slash"), ("tab\t", "\u0007"),
                  ("ü €",), ('"', "."), ("x",)]:
        assert keys.split(keys.dotted(parts)) == parts
    assert keys.split("venues.x.plane") == ("venues", "x", "plane")
    with pytest.raises(ValueError, match="a quoted part must end the key"):
        keys.split('venues."x"y.plane')


def test_reload_refuses_exactly_the_keys_declared_fixed_with_their_reason() -> None:
    for path, concrete in CONCRETE.items():
        key = keys.BY_PATH[path]
        expected = [] if key.reloadable else [f"{concrete}: {key.restart}"]
        assert needs_restart([concrete]) == expected
    assert needs_restart(["nothing.like.this"]) == ["nothing.like.this: fixed at start-up"]


def test_what_a_reload_applies() -> None:
    reloadable = sorted(path for path, key in keys.BY_PATH.items() if key.reloadable)
    limits = ["equity", "max_asset_exposure", "max_leverage", "max_order_notional",
              "price_band_bps"]
    ccxt = ["fee_read_pause_ms", "fee_reads", "holdings_ms", "lookup_delay_ms",
            "markets_refresh_ms",
            "order_timeout_ms",
            "poll_interval_ms", "resend_window_ms", "send_attempts", "slippage_bps",
            "timeout_ms"]
    assert reloadable == sorted([
        "allocations", "log.level", "log.outcomes", "policies", "policies.file",
        "routes.*", "routes.*.symbols", "routes.*.venues",
        "risk.require_registered_run", "risk.signatures",
        *(f"risk.limits.{k}" for k in limits), *(f"venues.*.limits.{k}" for k in limits),
        "venues.*.confirm_live", *(f"venues.*.ccxt.{k}" for k in ccxt),
        "venues.*.drift.action", "venues.*.drift.baseline", "venues.*.drift.ignore",
        "venues.*.drift.tolerance",
        "venues.*.symbols.*", "venues.*.symbols.*.max_asset_exposure",
        "venues.*.symbols.*.max_order_notional", "venues.*.symbols.*.price_band_bps"])


def test_a_table_that_holds_a_fixed_key_is_fixed_and_one_that_holds_a_secret_is_secret() -> None:
    for path, key in keys.BY_PATH.items():
        inside = [k for p, k in keys.BY_PATH.items() if p.startswith(f"{path}.")]
        if any(not k.reloadable for k in inside):
            assert not key.reloadable, path
        if any(k.secret for k in inside):
            assert key.secret, path


@pytest.mark.parametrize("path", [p for p in keys.BY_PATH
                                  if keys.LOOKS_SECRET.search(p)])
def test_a_key_named_like_a_secret_is_declared_secret(path: str) -> None:
    declared = keys.BY_PATH[path]
    assert declared.secret or declared.reference
    assert keys.unrecorded(PARTS[path])


REFERENCES = ["risk.key_file", "risk.key_credential", "venues.*.ccxt.credentials_file",
              "venues.*.ccxt.credentials_env", "venues.*.ccxt.credentials_credential"]


def test_secrets_are_what_the_declarations_say_and_references_are_not_secrets() -> None:
    assert keys.secret(("venues", "x", "ccxt", "options"))
    assert keys.secret(("venues", "x", "ccxt", "options", "apiKey"))
    assert keys.secret(("nothing", "declared"))          # fail closed
    assert not keys.secret(("venues", "x", "ccxt", "timeout_ms"))
    assert not keys.secret(("venues", "x", "symbols", "BTC/USDT"))
    assert not keys.secret(("risk", "limits", "equity"))
    # Where a secret is kept is shown to the operator, never recorded by a reload.
    assert sorted(p for p, k in keys.BY_PATH.items() if k.reference) == sorted(REFERENCES)
    for path in REFERENCES:
        assert not keys.secret(PARTS[path]) and keys.unrecorded(PARTS[path])
    assert not keys.unrecorded(("venues", "x", "ccxt", "base_url"))


def _config(tmp_path: Path, name: str, text: str) -> Config:
    path = tmp_path / name
    path.write_text(text)
    return load(path).config


def test_a_reload_judges_a_dotted_venue_by_its_own_keys(tmp_path: Path) -> None:
    """A venue named "desk.symbols" once had its plane judged as a symbol's (reloadable):
    a reload moved it to the live plane. A plane, an adapter, a ccxt table need a restart
    whatever the venue is called, and a ccxt table never reaches the record in clear."""
    paper = GOOD + "[risk]\nsignatures = 'none'\n[venues.\"desk.symbols\"]\nplane = 'paper'\n"
    old = _config(tmp_path, "old.toml", paper)
    stub = _config(tmp_path, "stub.toml",
                   paper.replace("plane = 'paper'\n", "plane = 'live'\nadapter = 'stub'\n"))
    changed = changes(old, stub)
    assert changed == {'venues."desk.symbols".adapter': [None, "stub"],
                       'venues."desk.symbols".plane': ["paper", "live"]}
    venue = "venues, planes, adapters, exchanges and credentials are fixed at start-up"
    assert needs_restart(list(changed)) == [f"{key}: {venue}" for key in changed]

    leak = paper.replace('[venues."desk.symbols"]', '[venues."x.confirm_live"]')
    ccxt = _config(tmp_path, "ccxt.toml", leak.replace(
        '[venues."x.confirm_live"]\nplane = \'paper\'\n',
        '[venues."x.confirm_live"]\nplane = \'live\'\nadapter = \'ccxt\'\n'
        '[venues."x.confirm_live".ccxt]\nexchange = "binance"\ncredentials_env = "ZQENV"\n'
        'options = {secret = "zqLEAKzq"}\n'))
    changed = changes(_config(tmp_path, "leak.toml", leak), ccxt)
    assert changed['venues."x.confirm_live".ccxt'] == ["***", "***"]
    assert "zqLEAKzq" not in repr(changed) and "ZQENV" not in repr(changed)
    assert all(line.endswith(venue) for line in needs_restart(list(changed)))


def test_a_reload_records_a_named_venue_s_limits_and_never_a_reference(tmp_path: Path) -> None:
    """"okx_options" and "APIKEY" are names, not secrets: their limits are recorded as
    they change. Where a key is kept is not recorded (the record says it changed)."""
    text = GOOD + ("[risk]\nsignatures = 'none'\nkey_file = '/k/one'\n[venues.okx_options]\n"
                   "plane = 'paper'\n[venues.okx_options.symbols.APIKEY]\n"
                   "max_order_notional = '1000'\n")
    old = _config(tmp_path, "old.toml", text)
    new = _config(tmp_path, "new.toml", text.replace("'1000'", "'5'"))
    assert changes(old, new) == {
        "venues.okx_options.symbols.APIKEY.max_order_notional": ["1000", "5"]}
    moved = _config(tmp_path, "moved.toml", text.replace("/k/one", "/k/two"))
    assert changes(old, moved) == {"risk.key_file": ["***", "***"]}
