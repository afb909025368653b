"""Every config key has exactly one declaration of what it means, and reload obeys it."""

from __future__ import annotations

from collections import Counter

import msgspec.inspect as mi
import pytest

from execd.app.reload import needs_restart
from execd.config import keys
from execd.config.schema import Config


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
    for path, concrete in CONCRETE.items():
        assert keys.find(concrete) is keys.BY_PATH[path]


def test_a_key_below_a_declared_one_falls_under_the_longest() -> None:
    options = keys.BY_PATH["venues.*.ccxt.options"]
    assert keys.find("venues.x.ccxt.options.defaultType") is options
    assert keys.find("venues.x.ccxt.options.a.b") is options
    # A symbol's name may hold a dot: the change is still that symbol's.
    symbol = keys.BY_PATH["venues.*.symbols.*"]
    assert keys.find("venues.x.symbols.BTC.P.max_order_notional") is symbol
    assert keys.find("nothing.like.this") is None


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
    ccxt = ["fee_read_pause_ms", "fee_reads", "lookup_delay_ms", "order_timeout_ms",
            "poll_interval_ms", "resend_window_ms", "send_attempts", "slippage_bps",
            "timeout_ms"]
    assert reloadable == sorted([
        "log.level", "log.outcomes", "risk.require_registered_run", "risk.signatures",
        *(f"risk.limits.{k}" for k in limits), *(f"venues.*.limits.{k}" for k in limits),
        "venues.*.confirm_live", *(f"venues.*.ccxt.{k}" for k in ccxt),
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
    assert keys.BY_PATH[path].secret
    assert keys.secret(CONCRETE[path])


def test_secrets_are_what_the_declarations_and_the_names_say() -> None:
    assert keys.secret("venues.x.ccxt.credentials_env")
    assert keys.secret("venues.x.ccxt.options.apiKey")
    assert keys.secret("venues.x.ccxt.future_password")  # not declared: the name says so
    assert not keys.secret("venues.x.ccxt.timeout_ms")
    assert not keys.secret("venues.x.symbols.BTC/USDT")
    assert not keys.secret("risk.limits.equity")
