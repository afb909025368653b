"""Live-plane benchmark (part of ``make bench``): the daemon's cost over raw ccxt.

A fake Binance spot server (tests/fakes/binance.py) runs in its own process on
127.0.0.1. Each round has two phases, one after the other, at the same offered
rate (default 100 orders/s):

* **raw**: ``create_order`` called directly on a ccxt exchange built exactly as the
  daemon builds its own (same class, options and URL rewrite); per order, the time
  the call takes;
* **daemon**: ``execd run`` in this process, one intent per inbox file; per order,
  from the reader handing the intent on to its outcome being durable. That span
  holds everything the daemon adds: risk checks, prepare, the order record's
  fsync before the call, the call itself, the outcome's fsync.

Per round: p50 and p99 of each phase and their ratios (daemon / raw). Printed
figures are medians over the rounds.

Then **resting orders filled later**, push against poll: the daemon sends limit
orders that rest at the fake, one at a time; once an order's send record is durable
the bench waits a random part of the poll interval (so the fill lands anywhere in
the poll cycle), tells the fake to fill it, and measures from that command to the
outcome being durable. Once with the venue's order stream (``stream = true``, the
default: the fill is pushed over the fake's user data stream) and once polling
alone (``stream = false``), both at the default ``poll_interval_ms`` of 500. Printed:
medians over the rounds of each round's p50 and p99, and the ratio poll / push.

Usage: ``python bench/live.py [--rounds 3] [--orders 300] [--rate 100] [--resting 20]``
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

API_KEY = "bench-api-key-000000000000000001"
SECRET = "bench-secret-0000000000000000001"

CONFIG = """
[daemon]
lakehouse = "{work}/lakehouse"
ledger_dir = "{work}/ledger"
poll_interval_ms = 1

[clock]
kind = "wall"

[control]
socket = "{work}/ctl.sock"

[log]
level = "warning"
outcomes = "summary"

[risk]
signatures = "none"

[venues.binance]
plane = "live"
adapter = "ccxt"

[venues.binance.ccxt]
exchange = "binance"
credentials_file = "{work}/binance.json"
base_url = "{url}"
rate_limit_ms = 0
"""

# A limit buy under the market (50,000): it rests until the fake is told to fill it.
RESTING = ('{{"kind":"intent","intent_id":"00000000-0000-4000-8000-{n:012d}",'
           '"source_run":"bench","venue":"binance","symbol":"BTC/USDT","side":"buy",'
           '"quantity":"0.001","urgency":"medium","order_type":"limit",'
           '"limit_price":"49000","reference_price":"50000"}}\n')

LINE = ('{{"kind":"intent","intent_id":"00000000-0000-4000-8000-{n:012d}",'
        '"source_run":"bench","venue":"binance","symbol":"BTC/USDT","side":"buy",'
        '"quantity":"0.001","urgency":"critical","reference_price":"50000"}}\n')


def serve_fake() -> None:
    """Child process: run the fake exchange until stdin closes; print its URL first."""
    from tests.fakes.binance import FakeBinance, Market

    d = Decimal
    market = Market("BTC", "USDT", step_size=d("0.00001"), min_qty=d("0.00001"),
                    max_qty=d("9000"), tick_size=d("0.01"), min_price=d("0.01"),
                    max_price=d("1000000"), min_notional=d("5"), price=d("50000"))
    fake = FakeBinance({"BTC/USDT": market}, api_key=API_KEY, secret=SECRET,
                       balances={"BTC": d("1e9"), "USDT": d("1e15")})

    async def main() -> None:
        await fake.start()
        print(fake.url, flush=True)
        loop = asyncio.get_running_loop()
        # One command a line: "fill" fills every resting order; end of input stops.
        while (command := await loop.run_in_executor(None, sys.stdin.readline)):
            if command.strip() == "fill":
                fake.fill_resting("BTC/USDT")
                print("filled", flush=True)
        await fake.stop()

    asyncio.run(main())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3


async def raw_phase(url: str, orders: int, rate: int, offset: int) -> list[float]:
    """Per-order seconds of create_order on a ccxt instance built as the daemon builds it."""
    import anyio

    from execd.config import schema as config
    from execd.model.clock import WallClock
    from execd.venues.ccxt.credentials import Credentials
    from execd.venues.ccxt.venue import CcxtVenue

    work = Path(tempfile.mkdtemp(dir=ROOT / "bench" / "out"))
    try:
        (work / "binance.json").write_text(json.dumps({"apiKey": API_KEY, "secret": SECRET}))
        (work / "execd.toml").write_text(CONFIG.format(work=work, url=url))
        table = config.load(work / "execd.toml").config.venues["binance"].ccxt
        assert table is not None
        venue = CcxtVenue("binance", table, Credentials(API_KEY, SECRET), WallClock(),
                          settle=lambda s: None, stopping=anyio.Event())
        exchange = venue.exchange
        await exchange.load_markets()
        latencies = []
        start = time.perf_counter()
        for i in range(orders):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await anyio.sleep(delay)
            began = time.perf_counter()
            await exchange.create_order("BTC/USDT", "market", "buy", "0.001", None,
                                        {"clientOrderId": f"raw{offset + i}"})
            latencies.append(time.perf_counter() - began)
        exchange.timeout_on_exit = 0
        await exchange.close()
        return latencies
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def daemon_phase(url: str, orders: int, rate: int, offset: int) -> list[float]:
    """Per-order seconds from the reader handing an intent on to its outcome being durable."""
    import anyio

    from execd.app.daemon import Daemon
    from execd.config import schema as config
    from execd.model.messages import ExecutionOutcome, IntentIn

    work = Path(tempfile.mkdtemp(dir=ROOT / "bench" / "out"))
    read_at: dict[Any, float] = {}
    latencies: list[float] = []

    def on_read(batch: list[Any]) -> None:
        now = time.perf_counter()
        for item in batch:
            if type(item) is IntentIn:
                read_at[item.intent.intent_id] = now

    def on_durable(commit: Any) -> None:
        now = time.perf_counter()
        for entry in commit.entries:
            if type(entry.body) is ExecutionOutcome:
                began = read_at.pop(entry.body.intent_id, None)
                if began is not None:
                    if entry.body.status != "FILLED":
                        raise RuntimeError(f"not filled: {entry.body}")
                    latencies.append(now - began)

    try:
        (work / "binance.json").write_text(json.dumps({"apiKey": API_KEY, "secret": SECRET}))
        (work / "execd.toml").write_text(CONFIG.format(work=work, url=url))
        registry = work / "lakehouse" / "audit" / "runs.jsonl"
        registry.parent.mkdir(parents=True)
        registry.write_text('{"run_id":"bench"}\n')
        loaded = config.load(work / "execd.toml")
        inbox = loaded.config.lakehouse.inbox
        inbox.mkdir(parents=True)
        daemon = Daemon(loaded, mode="run", read_probe=on_read, durable_probe=on_durable)
        async with anyio.create_task_group() as tg:
            tg.start_soon(daemon.run)
            while not (daemon.live and daemon.live[0].ready.is_set()):
                await anyio.sleep(0.01)
            start = time.perf_counter()
            for i in range(orders):
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    await anyio.sleep(delay)
                temp = inbox / f".{i:06d}.tmp"
                temp.write_text(LINE.format(n=offset + i))
                os.replace(temp, inbox / f"{i:06d}.jsonl")
            while len(latencies) < orders:
                await anyio.sleep(0.01)
            daemon.stopping.set()
        return latencies
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def resting_phase(url: str, fake: subprocess.Popen[str], orders: int, offset: int,
                        *, stream: bool, seed: int) -> list[float]:
    """Per-order seconds from telling the fake to fill a resting order to its durable outcome."""
    import anyio

    from execd.app.daemon import Daemon
    from execd.config import schema as config
    from execd.model.messages import ExecutionOutcome, SendAttemptRecord

    assert fake.stdin is not None and fake.stdout is not None
    work = Path(tempfile.mkdtemp(dir=ROOT / "bench" / "out"))
    placed: set[Any] = set()
    done: dict[Any, float] = {}

    def on_durable(commit: Any) -> None:
        now = time.perf_counter()
        for entry in commit.entries:
            body = entry.body
            if type(body) is SendAttemptRecord and body.answer == "placed":
                placed.add(body.intent_id)
            elif type(body) is ExecutionOutcome:
                if body.status != "FILLED":
                    raise RuntimeError(f"not filled: {body}")
                done[body.intent_id] = now

    phase = random.Random(seed)
    latencies: list[float] = []
    try:
        (work / "binance.json").write_text(json.dumps({"apiKey": API_KEY, "secret": SECRET}))
        (work / "execd.toml").write_text(CONFIG.format(work=work, url=url)
                                         + f"stream = {'true' if stream else 'false'}\n")
        registry = work / "lakehouse" / "audit" / "runs.jsonl"
        registry.parent.mkdir(parents=True)
        registry.write_text('{"run_id":"bench"}\n')
        loaded = config.load(work / "execd.toml")
        table = loaded.config.venues["binance"].ccxt
        assert table is not None
        poll = table.poll_interval_ms / 1000
        inbox = loaded.config.lakehouse.inbox
        inbox.mkdir(parents=True)
        daemon = Daemon(loaded, mode="run", durable_probe=on_durable)
        async with anyio.create_task_group() as tg:
            tg.start_soon(daemon.run)
            while not (daemon.live and daemon.live[0].ready.is_set()
                       and (not stream or daemon.live[0].stream.state == "listening")):
                await anyio.sleep(0.01)
            for i in range(orders):
                temp = inbox / f".{i:06d}.tmp"
                temp.write_text(RESTING.format(n=offset + i))
                os.replace(temp, inbox / f"{i:06d}.jsonl")
                while not placed:
                    await anyio.sleep(0.001)
                intent_id = placed.pop()
                # Anywhere in the poll cycle, as a fill on a real market would be.
                await anyio.sleep(phase.uniform(0, poll))
                began = time.perf_counter()
                fake.stdin.write("fill\n")
                fake.stdin.flush()
                if fake.stdout.readline().strip() != "filled":
                    raise RuntimeError("the fake did not fill")
                while intent_id not in done:
                    await anyio.sleep(0.001)
                latencies.append(done.pop(intent_id) - began)
            daemon.stopping.set()
        return latencies
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--resting", type=int, default=20,
                        help="resting orders a phase in the push-against-poll figures")
    parser.add_argument("--fake", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fake:
        serve_fake()
        return
    import anyio

    from execd.service import logs

    logs.configure("warning")
    (ROOT / "bench" / "out").mkdir(exist_ok=True)
    fake = subprocess.Popen([sys.executable, str(Path(__file__)), "--fake"], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert fake.stdout is not None and fake.stdin is not None
    url = fake.stdout.readline().strip()
    rows = []
    try:
        for round_ in range(args.rounds):
            offset = round_ * args.orders
            raw = anyio.run(raw_phase, url, args.orders, args.rate, offset)
            ours = anyio.run(daemon_phase, url, args.orders, args.rate, 10_000_000 + offset)
            rows.append({
                "raw_p50": percentile(raw, 0.5), "raw_p99": percentile(raw, 0.99),
                "daemon_p50": percentile(ours, 0.5), "daemon_p99": percentile(ours, 0.99)})
        for round_ in range(args.rounds):
            offset = 20_000_000 + round_ * 2 * args.resting
            push = anyio.run(functools.partial(resting_phase, url, fake, args.resting, offset,
                                               stream=True, seed=round_))
            poll = anyio.run(functools.partial(resting_phase, url, fake, args.resting,
                                               offset + args.resting, stream=False,
                                               seed=round_))
            rows[round_].update({
                "push_p50": percentile(push, 0.5), "push_p99": percentile(push, 0.99),
                "poll_p50": percentile(poll, 0.5), "poll_p99": percentile(poll, 0.99)})
    finally:
        fake.stdin.close()
        fake.wait(timeout=30)

    def med(key: str) -> float:
        return statistics.median(r[key] for r in rows)

    p50_ratios = [r["daemon_p50"] / r["raw_p50"] for r in rows]
    p99_ratios = [r["daemon_p99"] / r["raw_p99"] for r in rows]
    print(f"live benchmark: {os.cpu_count()} cores, fake Binance on loopback, "
          f"{args.orders} orders a phase at {args.rate}/s, median of {args.rounds} rounds")
    print(f"  raw ccxt create_order:  p50 {med('raw_p50'):.2f} ms, p99 {med('raw_p99'):.2f} ms")
    print(f"  daemon read->durable:   p50 {med('daemon_p50'):.2f} ms, "
          f"p99 {med('daemon_p99'):.2f} ms")
    print(f"  ratio daemon/raw:       p50 {statistics.median(p50_ratios):.3f} "
          f"(rounds: {', '.join(f'{x:.3f}' for x in p50_ratios)}), "
          f"p99 {statistics.median(p99_ratios):.3f} "
          f"(rounds: {', '.join(f'{x:.3f}' for x in p99_ratios)})")
    push_ratios = [r["poll_p50"] / r["push_p50"] for r in rows]
    print(f"  resting orders filled later ({args.resting} a phase, poll_interval_ms=500), "
          f"fill -> outcome durable:")
    print(f"    push (order stream):  p50 {med('push_p50'):.2f} ms, p99 {med('push_p99'):.2f} ms")
    print(f"    poll alone:           p50 {med('poll_p50'):.2f} ms, p99 {med('poll_p99'):.2f} ms")
    print(f"    ratio poll/push:      p50 {statistics.median(push_ratios):.1f} "
          f"(rounds: {', '.join(f'{x:.1f}' for x in push_ratios)})")


if __name__ == "__main__":
    main()
