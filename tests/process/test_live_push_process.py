"""Push as a real process: ``execd run`` with a live venue whose orders are pushed.

The promise here is about the process: the stream shows in ``execd ctl status``, a
resting order's fill arrives by push (the poll interval is longer than the wait), a
SIGTERM closes the stream with the venue, and no credential reaches the log.
"""

from __future__ import annotations

import re
import signal
from pathlib import Path

from tests.fakes.binance import FakeBinanceThread
from tests.helpers import count_outcomes, ctl, drop, lines, records, start_daemon, wait_for
from tests.live import API_KEY, SECRET, fake_exchange, live_intent, write_live_config


def test_a_pushed_fill_then_a_stop_that_closes_the_stream(tmp_path: Path) -> None:
    fake = fake_exchange()
    thread = FakeBinanceThread(fake)
    ledger = tmp_path / "ledger"
    with thread as running:
        path = write_live_config(tmp_path, running.url, level="info", poll_ms=60_000,
                                 order_timeout_ms=120_000)
        drop(tmp_path / "lakehouse" / "inbox", "one.jsonl", lines(live_intent(
            1, urgency="medium", order_type="limit", limit_price="49000")))
        log = tmp_path / "daemon.log"
        process = start_daemon(path, log)
        try:
            wait_for(lambda: thread.call(lambda: (fake.subscribers(), len(fake.open_orders())))
                     == (1, 1) or process.poll() is not None)
            assert process.poll() is None, log.read_text()
            wait_for(lambda: re.search(r"^  binance +live +ccxt +ready; stream listening",
                                       ctl(path, "status").stdout, re.MULTILINE) is not None)
            thread.call(lambda: fake.fill_resting("BTCUSDT"))
            # Shorter than the 60 s poll interval: only a push can bring it in time.
            wait_for(lambda: count_outcomes(ledger) == 1, timeout=30)
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
        finally:
            if process.poll() is None:
                process.kill()
        assert thread.call(fake.subscribers) == 0
    [outcome] = [r["body"] for r in records(ledger) if r["kind"] == "outcome"]
    assert outcome["status"] == "FILLED"
    text = log.read_text()
    assert "stream.listening" in text and "stream.closed" in text
    assert API_KEY not in text and SECRET not in text
