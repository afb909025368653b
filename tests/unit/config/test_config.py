"""Bad config stops start-up: one line per problem naming file, key, expected and found."""

from __future__ import annotations

from pathlib import Path

import pytest

from execd.config import schema as config
from tests.config_texts import GOOD, LIVE
from tests.helpers import ROOT


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(config.ConfigError) as caught:
        config.load(path)
    return [str(p) for p in caught.value.problems]


def test_the_shipped_config_is_valid() -> None:
    loaded = config.load(ROOT / "config" / "execd.toml")
    assert set(loaded.config.planes().values()) == {"paper"}


def test_good_config_loads(tmp_path: Path) -> None:
    path = tmp_path / "ok.toml"
    path.write_text(GOOD)
    assert config.load(path).config.venues["binance"].plane == "paper"
    assert config.load(path).config.input.max_context_bytes == 64 << 20
    path.write_text(GOOD + "[input]\nmax_context_bytes = 4096\n")
    assert config.load(path).config.input.max_context_bytes == 4096


@pytest.mark.parametrize(("text", "line"), [
    (GOOD + "[control]\nsocket = '/tmp/" + "s" * 120 + "'\n",
     "control.socket: expected a path of at most 107 bytes (the limit of a unix socket's "
     "address), found 125 bytes"),
    (GOOD + "[queues]\nrouter = 0\n", "queues.router: expected an integer >= 1, found int 0"),
    (GOOD + "[queues]\nrouter = 'big'\n", "queues.router: expected an integer >= 1, found 'big'"),
    (GOOD + "[queues]\nroutr = 4\n", "queues.routr: expected one of sentinel, router"),
    (GOOD + "[clock]\nkind = 'sundial'\n",
     "clock.kind: expected one of 'logical', 'wall', found 'sundial'"),
    (GOOD.replace('ledger_dir = "var/g"\n', ""), "daemon.ledger_dir: expected a string"),
    (GOOD + "[venues.x]\nplane = 'moon'\n",
     "venues.x.plane: expected one of 'paper', 'live', found 'moon'"),
    (GOOD + "[venues.y]\nplane = 'live'\n",
     "venues.y.adapter: expected a live adapter (\"ccxt\" or \"stub\") on the live plane, "
     "found None"),
    (GOOD + "[venues.z]\nplane = 'paper'\nadapter = 'stub'\n",
     "venues.z.adapter: expected \"paper\" (or nothing) on the paper plane, found 'stub'"),
    ("daemon = 3\n" + GOOD, "(syntax): expected valid TOML"),
    ("[daemon\n", "(syntax): expected valid TOML"),
    (GOOD + "[log]\nlevel = 'loud'\n", "log.level: expected one of 'debug'"),
    ("extra = 1\n" + GOOD, "extra: expected one of daemon, venues"),
    (GOOD + "bogus = 1\n", "venues.binance.bogus: expected one of plane, adapter"),
    ("[daemon]\nlakehouse='a'\nledger_dir='b'\n[venues]\n", "venues: expected at least one"),
    (GOOD + "[risk.limits]\nmax_order_notional = '-5'\n",
     "risk.limits.max_order_notional: expected a positive decimal number, found -5"),
    (GOOD + "[allocations]\nmomentum = '1e200'\n",
     "allocations.momentum: expected a positive decimal number of at most 1e15, found 1E+200"),
    (GOOD + "[allocations]\n'book:B1' = '0'\n",
     "allocations.book:B1: expected a positive decimal number of at most 1e15, found 0"),
    (GOOD + "[risk.limits]\nmax_asset_exposure = 'lots'\n",
     "risk.limits.max_asset_exposure: expected a decimal number (string or number) or nothing, "
     "found 'lots'"),
    (GOOD + "[risk.limits]\nmax_leverage = '3'\n",
     "risk.limits.equity: expected a value (it goes with risk.limits.max_leverage), found "
     "nothing (missing)"),
    (GOOD + "[risk.limits]\nmax_orders = 5\n",
     "risk.limits.rate_window: expected a value (it goes with risk.limits.max_orders)"),
    (GOOD + "[ledger]\ncheckpoint_records = 0\ncheckpoint_interval = 100\n",
     "ledger.checkpoint_records: expected at least 1 (ledger.checkpoint_interval adds "
     "checkpoints by time to those by seq; it cannot stand alone), found 0"),
    (GOOD + "[venues.binance.limits]\nfailure_limit = 3\nfailure_window = 10\n",
     "venues.binance.limits.cooldown: expected a value (it goes with "
     "venues.binance.limits.failure_limit)"),
    (GOOD + "[venues.binance.symbols.'BTC/USDT']\nprice_band_bps = 0\n",
     "venues.binance.symbols.BTC/USDT.price_band_bps: expected an integer >= 1 <= 100000 or "
     "nothing, found int 0"),
    (GOOD + "[venues.binance.symbols.'BTC/USDT']\nmax_leverage = '2'\n",
     "venues.binance.symbols.BTC/USDT.max_leverage: expected one of max_order_notional"),
    (GOOD + "[venues.live1]\nplane = 'live'\nadapter = 'stub'\n",
     "risk.key_file: expected a key file or risk.key_credential (signatures = 'live' covers a "
     "configured venue), found neither"),
    (GOOD + "[risk]\nkey_file = 'k'\nkey_credential = 'c'\n",
     "risk.key_credential: expected only one of risk.key_file and risk.key_credential, found both"),
    (GOOD + "[risk]\nsignatures = 'sometimes'\n",
     "risk.signatures: expected one of 'none', 'live', 'all', found 'sometimes'"),
    (GOOD + "[control]\ntimeout_ms = 1\n",
     "control.timeout_ms: expected an integer >= 10 <= 600000, found int 1"),
    (GOOD + "[governance]\nenforce = 'yes'\n",
     "governance.enforce: expected true or false, found 'yes'"),
    (LIVE.replace("[venues.x.ccxt]\nexchange = 'binance'\ncredentials_env = 'X'\n", ""),
     "venues.x.ccxt: expected a ccxt table (adapter = \"ccxt\"), found none"),
    (GOOD + "[venues.binance.ccxt]\nexchange = 'binance'\n",
     "venues.binance.ccxt: expected no ccxt table unless adapter = \"ccxt\""),
    (LIVE.replace("'binance'", "'nosuchexchange'"),
     "venues.x.ccxt.exchange: expected a ccxt exchange id, found 'nosuchexchange'"),
    (LIVE.replace("'binance'", "'bitfinex'"),
     "venues.x.ccxt.exchange: expected an exchange whose precision is a step size or a number "
     "of decimals, found bitfinex (significant digits)"),
    (LIVE.replace("'binance'", "'kraken'"),
     "venues.x.ccxt.exchange: expected an exchange execd can trade on safely (binance, bybit, "
     "okx), found kraken: ccxt looks an order up by client id through Kraken's integer "
     "userref"),
    (LIVE.replace("'binance'", "'coinbase'"),
     "found coinbase: ccxt drops the client order id it is given"),
    (LIVE.replace("'binance'", "'kucoin'"),
     "found kucoin: execd declares no capability for it"),
    (LIVE.replace("'binance'", "'okx'").replace(
        "credentials_env = 'X'", "credentials_env = 'X'\nclient_order_id_length = 36"),
     "venues.x.ccxt.client_order_id_length: expected at most 32 (okx's limit on a client "
     "order id), found 36"),
    (LIVE.replace("credentials_env = 'X'", "exchange_typo = 1"),
     "venues.x.ccxt.exchange_typo: expected one of exchange, credentials_file"),
    (LIVE.replace("credentials_env = 'X'", "base_url = 'http://h'"),
     "venues.x.ccxt.credentials_file: expected exactly one of credentials_file, credentials_env, "
     "credentials_credential, found none"),
    (LIVE.replace("credentials_env = 'X'", "credentials_env = 'X'\ncredentials_file = 'f'"),
     "found credentials_file, credentials_env"),
    (LIVE.replace("credentials_env = 'X'", "credentials_env = 'X'\nbase_url = 'ftp://h/p'"),
     "venues.x.ccxt.base_url: expected a string matching ^https?://[^/]+$ or nothing, found "
     "'ftp://h/p'"),
    (LIVE.replace("credentials_env = 'X'", "credentials_env = 'X'\nacceptance_window_ms = 5"),
     "venues.x.ccxt.acceptance_window_ms: expected an integer >= 100"),
    (GOOD + "confirm_live = true\n",
     "venues.binance.confirm_live: expected confirm_live only with plane = \"live\", found "
     "plane = 'paper'"),
    (GOOD + "[metrics]\nlisten = '0.0.0.0:9464'\n",
     "metrics.listen: expected HOST:PORT on a loopback address (127.0.0.1:9464, [::1]:9464), "
     "found "),
    (GOOD + "[metrics]\nlisten = '10.1.2.3:9464'\n", "metrics.listen: expected HOST:PORT"),
    (GOOD + "[metrics]\nlisten = '127.0.0.1'\n", "metrics.listen: expected HOST:PORT"),
    (GOOD + "[metrics]\nlisten = '127.0.0.1:70000'\n", "metrics.listen: expected HOST:PORT"),
    (GOOD + "[metrics]\nport = 9464\n", "metrics.port: expected one of listen"),
])
def test_each_mistake_has_its_line(tmp_path: Path, text: str, line: str) -> None:
    found = problems(tmp_path, text)
    assert any(line in p for p in found), found
    assert all(p.startswith(str(tmp_path / "bad.toml") + ": ") for p in found)


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    text = GOOD + "[queues]\nrouter = 0\nledger = -1\n[batches]\nitems = 'x'\n"
    assert len(problems(tmp_path, text)) == 3


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match="expected a readable TOML file"):
        config.load(tmp_path / "nope.toml")


def test_the_installed_production_config_is_valid() -> None:
    loaded = config.load(ROOT / "deploy" / "execd.toml")
    assert set(loaded.config.planes().values()) == {"paper"}
    assert loaded.config.metrics is not None
    assert loaded.config.daemon.ledger_dir == "/var/lib/execd/ledger"


def test_the_shipped_live_example_is_valid() -> None:
    loaded = config.load(ROOT / "config" / "live.example.toml")
    assert loaded.config.planes() == {"alpaca": "paper", "binance": "live"}
