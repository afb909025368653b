"""OKX credentials without the passphrase stop the real ``execd run`` process with one
config line (the in-process OKX tests are tests/pipeline/test_live_okx.py)."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from tests.helpers import EXECD, ROOT
from tests.live import API_KEY, SECRET, write_live_config


def test_okx_credentials_without_a_passphrase_stop_the_start_with_one_clear_line(
        tmp_path: Any) -> None:
    # OKX signs every private request with the API key's passphrase (ccxt's
    # "password"). Without one the venue could never start: execd run used to loop on
    # venue.start_failed forever, reading nothing; it is a config problem (exit 2).
    path = write_live_config(tmp_path, "http://127.0.0.1:9", "okx")
    credentials = tmp_path / "okx.json"
    credentials.write_text(json.dumps({"apiKey": API_KEY, "secret": SECRET}))
    result = subprocess.run([*EXECD, "run", "--config", str(path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2, result.stdout[-2000:]
    assert result.stderr.strip().splitlines() == [
        f"{path}: venues.okx.ccxt.credentials_file: expected JSON {{\"apiKey\": \"...\", "
        f"\"secret\": \"...\", \"password\": \"...\"}} (okx signs every request with the API "
        f"key's passphrase), found {credentials}: fields ['apiKey', 'secret']"]
    assert not (tmp_path / "ledger").exists() or not any((tmp_path / "ledger").iterdir())
