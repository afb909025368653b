"""``execd config show`` and the comparison behind ``execd config diff``, in process.

The secrets are found from keys.py, not listed here: a new key declared ``secret`` (or
named like one) is set by the first test and must come out ``"***"`` in both formats.
The diff against a running daemon is tests/process/test_config_show.py.
"""

from __future__ import annotations

import json
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import msgspec.inspect as mi
import pytest
import tomli_w

from execd.app.reload import needs_restart
from execd.cli.main import main
from execd.config import keys, resolved
from execd.config import schema as config
from execd.model.errors import ConfigError
from tests.config_texts import GOOD, LIVE

INFO = mi.type_info(config.Config)


def _leaf(path: str) -> mi.Type:
    """The type info of a declared key (``*`` for a venue or symbol name)."""
    tp: mi.Type = INFO
    for part in path.split("."):
        tp = next((t for t in getattr(tp, "types", ()) if not isinstance(t, mi.NoneType)), tp)
        if part == "*":
            assert isinstance(tp, mi.DictType)
            tp = tp.value_type
        else:
            assert isinstance(tp, mi.StructType)
            tp = next(f.type for f in tp.fields if f.name == part)
    return next((t for t in getattr(tp, "types", ()) if not isinstance(t, mi.NoneType)), tp)


def _is_leaf(path: str) -> bool:
    return not any(k.path.startswith(path + ".") for k in keys.KEYS)


def _concrete(path: str) -> str:
    return (path.replace("venues.*", "venues.v").replace("symbols.*", "symbols.s")
            .replace("routes.*", "routes.r"))


def _parts(path: str) -> tuple[str, ...]:
    return tuple(_concrete(path).split("."))


# Every key whose value execd treats as a secret, from its declaration or its name.
SECRETS = [k.path for k in keys.KEYS if _is_leaf(k.path) and keys.secret(_parts(k.path))]
# Every key that names where a secret is kept: shown, never masked.
REFERENCES = [k.path for k in keys.KEYS if k.reference]


def _value(path: str, marker: str) -> Any:
    tp = _leaf(path)
    if isinstance(tp, mi.StrType):
        return marker  # upper case, digits and _: it matches credentials_env's pattern too
    if isinstance(tp, mi.DictType):
        return {"zq_key": marker}
    pytest.fail(f"teach this test a value of {tp} for the secret key {path}")


def _with(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """``base`` with ``path`` set, in venue ``v`` (a ccxt one for a ccxt key)."""
    data = msgspec.json.decode(msgspec.json.encode(base))
    node = data
    parts = _concrete(path).split(".")
    if parts[0] == "venues":
        node = data["venues"].setdefault("v", {"plane": "paper"})
        if "ccxt" in parts:
            node.update({"plane": "live", "adapter": "ccxt"})
            node.setdefault("ccxt", {"exchange": "binance"})
            if parts[-1] == "options":      # a ccxt venue needs one credential source
                node["ccxt"].setdefault("credentials_env", "ZQENV")
        parts = parts[2:]
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return data


def _loads(data: dict[str, Any], path: Path) -> bool:
    path.write_text(tomli_w.dumps(data))
    try:
        config.load(path)
    except ConfigError:
        return False
    return True


def _secret_configs(tmp_path: Path, secrets: list[str] = SECRETS
                    ) -> list[tuple[Path, dict[str, str]]]:
    """Valid config files that together set every secret key, each to its own marker.

    Keys that exclude each other (one credential source per venue, one signing key)
    go into separate files: each key goes into the first file that still loads with it.
    """
    base = tomllib.loads(GOOD + "[risk]\nsignatures = 'none'\n")
    files: list[tuple[dict[str, Any], dict[str, str]]] = []
    probe = tmp_path / "probe.toml"
    for n, path in enumerate(secrets):
        marker = f"ZQSECRET{n}ZQ"
        for data, markers in files:
            candidate = _with(data, path, _value(path, marker))
            if _loads(candidate, probe):
                data.clear()
                data.update(candidate)
                markers[_concrete(path)] = marker
                break
        else:
            candidate = _with(base, path, _value(path, marker))
            assert _loads(candidate, probe), f"no valid config sets {path}: teach this test"
            files.append((candidate, {_concrete(path): marker}))
    out = []
    for i, (data, markers) in enumerate(files):
        target = tmp_path / f"secret-{i}.toml"
        target.write_text(tomli_w.dumps(data))
        out.append((target, markers))
    return out


def _without_nulls(table: dict[str, Any]) -> dict[str, Any]:
    return {k: _without_nulls(v) if isinstance(v, dict) else v
            for k, v in table.items() if v is not None}


def _at(table: dict[str, Any], dotted: str) -> Any:
    node: Any = table
    for part in dotted.split("."):
        node = node[part]
    return node


def test_the_secrets_are_found_from_the_declarations() -> None:
    assert SECRETS == ["venues.*.ccxt.options"]
    assert REFERENCES == ["risk.key_file", "risk.key_credential",
                          "venues.*.ccxt.credentials_file", "venues.*.ccxt.credentials_env",
                          "venues.*.ccxt.credentials_credential"]


@pytest.mark.parametrize("fmt", ["toml", "json"])
def test_show_shows_where_secrets_are_kept(
        tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A key file's path, a credential's name, an environment prefix: the operator wrote
    them and must see them (deploy/execd.toml round-trips); they hold no secret."""
    shown: set[str] = set()
    for path, markers in _secret_configs(tmp_path, REFERENCES):
        assert main(["config", "show", "-c", str(path), "--format", fmt]) == 0
        out = capsys.readouterr().out
        table = json.loads(out) if fmt == "json" else tomllib.loads(out)
        for key, marker in markers.items():
            assert _at(table, key) == marker, key
        if fmt == "toml":
            again = tmp_path / "again.toml"
            again.write_text(out)
            assert config.load(again).config == config.load(path).config
        shown |= set(markers)
    assert shown == {_concrete(p) for p in REFERENCES}


@pytest.mark.parametrize("fmt", ["toml", "json"])
def test_show_masks_every_secret_in_both_formats(
        tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    shown: set[str] = set()
    for path, markers in _secret_configs(tmp_path):
        assert main(["config", "show", "-c", str(path), "--format", fmt]) == 0
        out = capsys.readouterr().out
        for marker in markers.values():
            assert marker not in out
        table = json.loads(out) if fmt == "json" else tomllib.loads(out)
        for key in markers:
            assert _at(table, key) == resolved.MASK, key
        shown |= set(markers)
    assert shown == {_concrete(p) for p in SECRETS}


POLICIES = Path(__file__).resolve().parents[3] / "config" / "policies.toml"
ROUND = GOOD + """
[log]
level = "debug"

[risk]
signatures = "none"
crisis_regimes = ["CRISIS", "PANIC"]

[risk.limits]
max_order_notional = "12345678901234567890.12345678901234567891"
max_asset_exposure = "0.10"
max_orders = 5
rate_window = 1000

[metrics]
listen = "127.0.0.1:9464"

[policies]
file = "{POLICIES}"

[venues.stubby]
plane = "live"
adapter = "stub"
stub_result = "fail"

[venues.binance.limits]
equity = 1E+3
max_leverage = "2.5"

[venues.binance.symbols."BTC/USDT"]
max_order_notional = "0.1000000000000000055"

[venues.binance.symbols."ETH.PERP"]
price_band_bps = 50
""".replace("{POLICIES}", str(POLICIES))


def test_toml_reads_back_to_the_same_values_and_loads_to_an_equal_config(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in.toml"
    source.write_text(ROUND)
    loaded = config.load(source).config
    table = resolved.resolved(loaded)
    assert main(["config", "show", "-c", str(source)]) == 0
    text = capsys.readouterr().out
    assert tomllib.loads(text) == _without_nulls(table)
    shown = tmp_path / "shown.toml"
    shown.write_text(text)
    again = config.load(shown).config
    assert again == loaded
    # Decimals are strings, digit for digit: a float would have rounded these.
    limits = tomllib.loads(text)["risk"]["limits"]
    assert limits["max_order_notional"] == "12345678901234567890.12345678901234567891"
    assert limits["max_asset_exposure"] == "0.10"
    assert again.risk.limits.max_asset_exposure is not None
    assert again.risk.limits.max_asset_exposure.as_tuple() == Decimal("0.10").as_tuple()
    symbol = again.venues["binance"].symbols["BTC/USDT"].max_order_notional
    assert symbol == Decimal("0.1000000000000000055")
    assert main(["config", "show", "-c", str(source), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == table


def test_every_declared_key_is_shown_in_keys_order(tmp_path: Path) -> None:
    data = _with(tomllib.loads(ROUND), "venues.*.ccxt.credentials_env", "X")
    data["venues"]["v"]["symbols"] = {"s": {}}
    data["routes"] = {"r": {"venues": ["binance", "v"], "symbols": {"v": {"A/B": "A-B"}}}}
    path = tmp_path / "all.toml"
    assert _loads(data, path)
    table = resolved.resolved(config.load(path).config)
    for key in keys.KEYS:
        _at(table, _concrete(key.path))  # a KeyError names the key that is missing
    tops = list(dict.fromkeys(k.path.split(".")[0] for k in keys.KEYS))
    assert list(table) == tops
    assert list(table["venues"]) == ["binance", "stubby", "v"]
    assert list(table["venues"]["v"]["ccxt"])[:2] == ["exchange", "credentials_file"]


def _resolved(text: str, tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return resolved.resolved(config.load(path).config)


def test_compare_names_each_difference_and_whether_a_reload_applies_it(
        tmp_path: Path) -> None:
    old = _resolved(ROUND, tmp_path)
    assert resolved.compare(old, old) == resolved.Comparison([], [])
    new_text = (ROUND.replace('level = "debug"', 'level = "info"')
                .replace('listen = "127.0.0.1:9464"\n', 'listen = "127.0.0.1:9465"\n')
                .replace('"ETH.PERP"]', '"SOL/USDT"]')
                .replace("max_orders = 5", "max_orders = 6")
                .replace('max_leverage = "2.5"', 'max_leverage = "2.5"\nmax_orders = 1\n'
                         'rate_window = 10')
                .replace("[venues.stubby]", "[venues.kraken]")
                .replace('ledger_dir = "var/g"', 'ledger_dir = "var/g"\npoll_interval_ms = 200'))
    comparison = resolved.compare(old, _resolved(new_text, tmp_path))
    lines = [d.line() for d in comparison.differences]
    paths = "needs a restart: paths and polling are fixed at start-up"
    pacing = "needs a restart: pacing is rebuilt from the ledger at start-up only"
    venues = "needs a restart: the set of venues is fixed at start-up"
    assert lines == [
        f"daemon.poll_interval_ms: 100 -> 200 ({paths})",
        'log.level: "debug" -> "info" (reload applies it)',
        f"risk.limits.max_orders: 5 -> 6 ({pacing})",
        'metrics.listen: "127.0.0.1:9464" -> "127.0.0.1:9465" '
        "(needs a restart: the metrics endpoint is bound at start-up)",
        f"venues.binance.limits.max_orders: unset -> 1 ({pacing})",
        f"venues.binance.limits.rate_window: unset -> 10 ({pacing})",
        'venues.binance.symbols."ETH.PERP": removed (reload applies it)',
        "venues.binance.symbols.SOL/USDT: added (reload applies it)",
        f"venues.stubby: removed ({venues})",
        f"venues.kraken: added ({venues})",
    ]
    assert comparison.not_compared == []
    # The marks are the reload's own verdicts (app/reload.py, from keys.py).
    for difference in comparison.differences:
        assert (difference.restart is None) == (needs_restart([difference.key]) == [])


def test_optional_tables_and_secrets_compare_without_their_values(tmp_path: Path) -> None:
    old = _resolved(ROUND, tmp_path)
    no_metrics = _resolved(ROUND.replace('[metrics]\nlisten = "127.0.0.1:9464"\n', ""),
                           tmp_path)
    [gone] = resolved.compare(old, no_metrics).differences
    assert gone.line() == ("metrics: removed (needs a restart: the metrics endpoint is bound "
                           "at start-up)")
    [back] = resolved.compare(no_metrics, old).differences
    assert back.line().startswith("metrics: added (")
    keyed = ROUND.replace('signatures = "none"', 'signatures = "none"\nkey_file = "/k/one"')
    one = _resolved(keyed, tmp_path)
    other = _resolved(keyed.replace("/k/one", "/k/two"), tmp_path)
    [moved] = resolved.compare(one, other).differences
    assert moved.line() == ('risk.key_file: "/k/one" -> "/k/two" (needs a restart: the '
                            "signing key is read once at start-up)")
    # A real secret set on both sides cannot be compared, so the two are never equal.
    optioned = LIVE + "options = {apiKey = 'zqONEzq'}\n"
    first = _resolved(optioned, tmp_path)
    second = _resolved(optioned.replace("zqONEzq", "zqTWOzq"), tmp_path)
    comparison = resolved.compare(first, second)
    assert comparison == resolved.Comparison([], ["venues.x.ccxt.options"])
    assert not comparison.equal
    assert "zqONEzq" not in json.dumps(first)
    [added] = resolved.compare(_resolved(LIVE, tmp_path), first).differences
    assert added.line() == ('venues.x.ccxt.options: {} -> "***" (needs a restart: venues, '
                            "planes, adapters, exchanges and credentials are fixed at start-up)")
    assert resolved.compare(old, old).equal


NAMED = GOOD.replace("[venues.binance]", '[venues."x.confirm_live"]') + """
[risk]
signatures = "none"
[venues.okx_options]
plane = "paper"
[venues.okx_options.limits]
max_order_notional = "1000"
[venues.okx_options.symbols.APIKEY]
max_order_notional = "5"
[venues.okx_options.symbols."ETH.ccxt.options"]
price_band_bps = 7
"""


def test_a_venue_or_symbol_name_never_decides_what_is_masked_or_reloaded(
        tmp_path: Path) -> None:
    """Names are the operator's: "okx_options" or "APIKEY" once masked every key below
    them, so a limit change looked like no change; a dot once moved a key under another's
    rules ("x.confirm_live": its whole ccxt table shown, secrets and all)."""
    table = _resolved(NAMED, tmp_path)
    okx = table["venues"]["okx_options"]
    assert okx["limits"]["max_order_notional"] == "1000"
    assert okx["symbols"]["APIKEY"]["max_order_notional"] == "5"
    assert okx["symbols"]["ETH.ccxt.options"]["price_band_bps"] == 7
    assert table["venues"]["x.confirm_live"]["plane"] == "paper"
    changed = _resolved(NAMED.replace('"1000"', '"5"').replace("= 7", "= 8"), tmp_path)
    assert [d.line() for d in resolved.compare(table, changed).differences] == [
        'venues.okx_options.limits.max_order_notional: "1000" -> "5" (reload applies it)',
        'venues.okx_options.symbols."ETH.ccxt.options".price_band_bps: 7 -> 8 '
        "(reload applies it)"]
    live = NAMED.replace('[venues."x.confirm_live"]\nplane = "paper"',
                         '[venues."x.confirm_live"]\nplane = "live"\nadapter = "ccxt"\n'
                         '[venues."x.confirm_live".ccxt]\nexchange = "binance"\n'
                         "credentials_env = 'ENVPREFIX'\noptions = {secret = 'zqLEAKzq'}")
    went_live = resolved.compare(table, _resolved(live, tmp_path))
    assert "zqLEAKzq" not in json.dumps(msgspec.to_builtins(went_live))
    venue = "venues, planes, adapters, exchanges and credentials are fixed at start-up"
    assert {d.key: d.restart for d in went_live.differences} == {
        'venues."x.confirm_live".plane': venue, 'venues."x.confirm_live".adapter': venue,
        'venues."x.confirm_live".ccxt': venue}


def test_a_path_with_a_newline_stays_in_the_header_comment(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A newline in the config's path once ended the comment: the rest of the path became
    TOML (a key ``zz = 1``) and the output no longer read back."""
    path = tmp_path / "x\nzz = 1\n.toml"
    path.write_text(GOOD)
    assert main(["config", "show", "-c", str(path)]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].startswith(f"# {json.dumps(str(path))} as execd resolved it")
    assert "zz" not in tomllib.loads(text)
    shown = tmp_path / "shown.toml"
    shown.write_text(text)
    assert config.load(shown).config == config.load(path).config
