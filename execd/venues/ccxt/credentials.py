"""API credentials for a live venue: read once at start-up, never logged or recorded."""

from __future__ import annotations

import json
import os
from pathlib import Path

from execd.config.schema import MAX_SECRET_BYTES, CcxtConfig, ConfigError, ConfigProblem
from execd.model.errors import FileRefused
from execd.model.files import read_regular
from execd.venues.ccxt import exchanges


class Credentials:
    """An API key and secret (and a passphrase where the exchange wants one)."""

    __slots__ = ("api_key", "password", "secret")

    def __init__(self, api_key: str, secret: str, password: str | None = None) -> None:
        self.api_key = api_key
        self.secret = secret
        self.password = password

    def __repr__(self) -> str:
        # A stray repr in a log line or a traceback must not carry the secret.
        return f"Credentials(api_key={self.api_key[:4]}…)"


def load_credentials(venue: str, table: CcxtConfig, config_file: str) -> Credentials:
    """The credentials named by ``venues.VENUE.ccxt``; ConfigError when they cannot be read."""
    prefix = f"venues.{venue}.ccxt"
    if table.credentials_env:
        env = table.credentials_env
        key, secret = os.environ.get(f"{env}_API_KEY"), os.environ.get(f"{env}_SECRET")
        if not key or not secret:
            missing = [n for n, v in ((f"{env}_API_KEY", key), (f"{env}_SECRET", secret))
                       if not v]
            raise ConfigError([ConfigProblem(
                config_file, f"{prefix}.credentials_env",
                f"{env}_API_KEY and {env}_SECRET set in the environment",
                f"{' and '.join(missing)} unset or empty")])
        password = os.environ.get(f"{env}_PASSWORD") or None
        if password is None and _needs_password(table):
            raise ConfigError([ConfigProblem(
                config_file, f"{prefix}.credentials_env",
                f"{env}_PASSWORD set in the environment ({table.exchange} signs every "
                f"request with the API key's passphrase)", f"{env}_PASSWORD unset or empty")])
        return Credentials(key, secret, password)
    if table.credentials_credential:
        name = f"{prefix}.credentials_credential"
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise ConfigError([ConfigProblem(
                config_file, name, "CREDENTIALS_DIRECTORY set by systemd (LoadCredential=)",
                "it unset")])
        path = Path(directory) / table.credentials_credential
    else:
        name, path = f"{prefix}.credentials_file", Path(table.credentials_file or "")
    try:
        # A regular file of bounded size: a FIFO there must not block the start.
        data = json.loads(read_regular(path, MAX_SECRET_BYTES, "credentials file"))
    except FileRefused as exc:
        raise ConfigError([ConfigProblem(config_file, name, exc.expected,
                                         f"{path}: {exc.found}")]) from None
    except (ValueError, RecursionError):  # not JSON, or nested past json's recursion
        raise ConfigError([ConfigProblem(config_file, name, "JSON with apiKey and secret",
                                         f"{path}: not JSON")]) from None
    if not (isinstance(data, dict) and isinstance(data.get("apiKey"), str)
            and isinstance(data.get("secret"), str) and data["apiKey"] and data["secret"]):
        fields = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ConfigError([ConfigProblem(config_file, name,
                                         'JSON {"apiKey": "...", "secret": "..."}',
                                         f"{path}: fields {fields}")])
    password = data.get("password")
    if not (isinstance(password, str) and password) and _needs_password(table):
        raise ConfigError([ConfigProblem(
            config_file, name, 'JSON {"apiKey": "...", "secret": "...", "password": "..."} ('
            f"{table.exchange} signs every request with the API key's passphrase)",
            f"{path}: fields {sorted(data)}" if "password" not in data
            else f"{path}: password empty or not a string")])
    return Credentials(data["apiKey"], data["secret"],
                       password if isinstance(password, str) else None)


def _needs_password(table: CcxtConfig) -> bool:
    """Whether the venue's exchange signs with a passphrase (a start without it cannot trade)."""
    return exchanges.exchange(table.exchange).needs_password
