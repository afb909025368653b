"""Live-venue credentials: read from one source, refused with file, key, expected, found."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from execd.config.schema import MAX_SECRET_BYTES, CcxtConfig, ConfigError
from execd.venues.ccxt.credentials import load_credentials


def test_from_a_file_the_environment_and_a_systemd_credential(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "k.json"
    path.write_text(json.dumps({"apiKey": "key-1234567", "secret": "s3cret", "password": "p"}))
    loaded = load_credentials("v", CcxtConfig("binance", credentials_file=str(path)), "c.toml")
    assert (loaded.api_key, loaded.secret, loaded.password) == ("key-1234567", "s3cret", "p")
    assert "s3cret" not in repr(loaded)
    monkeypatch.setenv("EX_API_KEY", "k2")
    monkeypatch.setenv("EX_SECRET", "s2")
    loaded = load_credentials("v", CcxtConfig("binance", credentials_env="EX"), "c.toml")
    assert (loaded.api_key, loaded.secret) == ("k2", "s2")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    loaded = load_credentials("v", CcxtConfig("binance", credentials_credential="k.json"),
                              "c.toml")
    assert loaded.api_key == "key-1234567"


@pytest.mark.parametrize(("table", "content", "line"), [
    (CcxtConfig("binance", credentials_file="{dir}/missing.json"), None,
     "c.toml: venues.v.ccxt.credentials_file: expected a readable credentials file, found "),
    (CcxtConfig("binance", credentials_file="{dir}/k.json"), "not json",
     "expected JSON with apiKey and secret, found {dir}/k.json: not JSON"),
    (CcxtConfig("binance", credentials_file="{dir}/k.json"), '{"apiKey": "a"}',
     "expected JSON {\"apiKey\": \"...\", \"secret\": \"...\"}, found {dir}/k.json: fields "
     "['apiKey']"),
    (CcxtConfig("binance", credentials_env="NOPE"), None,
     "venues.v.ccxt.credentials_env: expected NOPE_API_KEY and NOPE_SECRET set in the "
     "environment, found NOPE_API_KEY and NOPE_SECRET unset or empty"),
    (CcxtConfig("binance", credentials_credential="k"), None,
     "venues.v.ccxt.credentials_credential: expected CREDENTIALS_DIRECTORY set by systemd"),
])
def test_each_unusable_source_is_one_clear_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, table: CcxtConfig, content: str | None,
        line: str) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    if content is not None:
        (tmp_path / "k.json").write_text(content)
    if table.credentials_file:
        table = CcxtConfig("binance", credentials_file=table.credentials_file.replace(
            "{dir}", str(tmp_path)))
    with pytest.raises(ConfigError) as caught:
        load_credentials("v", table, "c.toml")
    assert line.replace("{dir}", str(tmp_path)) in str(caught.value)


def load_in_thread(table: CcxtConfig) -> str:
    """load_credentials' refusal, from a thread so that a blocked read fails the test."""
    result: list[str] = []

    def run() -> None:
        try:
            load_credentials("v", table, "c.toml")
        except ConfigError as exc:
            result.append(str(exc))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=30)
    assert result, "load_credentials blocked or did not refuse"
    return result[0]


def test_a_fifo_a_huge_file_or_deep_nesting_is_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    table = CcxtConfig("binance", credentials_file=str(path))
    os.mkfifo(path)
    assert load_in_thread(table) == (f"c.toml: venues.v.ccxt.credentials_file: expected a "
                                     f"regular credentials file, found {path}: a FIFO")
    path.unlink()
    path.write_bytes(b" " * (MAX_SECRET_BYTES + 1))
    assert load_in_thread(table) == (
        f"c.toml: venues.v.ccxt.credentials_file: expected a credentials file of at most "
        f"{MAX_SECRET_BYTES} bytes, found {path}: {MAX_SECRET_BYTES + 1} bytes")
    path.write_text("[" * 20_000 + "]" * 20_000)
    assert load_in_thread(table) == ("c.toml: venues.v.ccxt.credentials_file: expected JSON "
                                     f"with apiKey and secret, found {path}: not JSON")
