"""The real ``execd run`` process without its live venue's credentials: exit 2, nothing
written (the in-process half is tests/unit/venues/test_credentials.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.helpers import EXECD, ROOT
from tests.live import write_live_config


def test_the_live_daemon_refuses_to_start_without_credentials(tmp_path: Path) -> None:
    path = write_live_config(tmp_path, "http://127.0.0.1:9")
    (tmp_path / "binance.json").unlink()
    result = subprocess.run([*EXECD, "run", "--config", str(path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "venues.binance.ccxt.credentials_file: expected a readable credentials file" in (
        result.stderr)
    assert not (tmp_path / "ledger").exists() or not any((tmp_path / "ledger").iterdir())
