"""Paper-plane benchmark: ``make bench``.

Three measurements, each in a fresh child process so peak RSS belongs to one run:

* throughput: N intents replayed through the full pipeline (reader, sentinel,
  router, paper adapter, ledger writer with group commit and fsync), intents/s;
* peak RSS (VmHWM) of those runs, at 100k and at 1M intents;
* latency: ``execd run`` with intents arriving in the inbox at a fixed offered rate;
  per intent, from the reader handing it on to its outcome being durable.

The config turns every per-intent risk check on (registry, notional, exposure,
leverage, price band, rate) with limits wide enough that every intent passes them,
so the figures include the cost of checking.

Figures are medians over ``--runs`` runs. Usage:
``python bench/paper.py [--runs 3] [--sizes 100000,1000000] [--rate 10000] [--seconds 10]``

``--against REV`` measures throughput of this tree and of git revision REV (its own
``bench/paper.py`` in a temporary worktree), alternating runs, and prints the ratio.

``EXECD_BENCH_CHECKPOINTS=N`` sets ``ledger.checkpoint_records`` in the throughput
runs (``0``: checkpoints off; unset: the default), to measure what checkpoints cost.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Every per-intent risk check on, with limits wide enough that every intent passes;
# bench/sentinel.py times the sentinel under the same limits.
LIMITS = """
[venues.binance]
plane = "paper"

[venues.alpaca]
plane = "paper"

[risk.limits]
max_order_notional = "1000000"
max_asset_exposure = "1000000000000"
max_leverage = "1000"
equity = "1000000000"
price_band_bps = 500
max_orders = 1000000000
rate_window = 1
"""

CONFIG = """
[daemon]
lakehouse = "{work}/lakehouse"
ledger_dir = "{work}/ledger"
poll_interval_ms = {poll}

[control]
socket = "{work}/ctl.sock"

[log]
level = "warning"
outcomes = "summary"
""" + LIMITS


def write_lakehouse(work: Path) -> None:
    """The audit registry that the bench intents' source run must be in."""
    registry = work / "lakehouse" / "audit" / "runs.jsonl"
    registry.parent.mkdir(parents=True, exist_ok=True)
    registry.write_text('{"run_id":"bench-run"}\n')

LINE = ('{{"kind":"intent","intent_id":"00000000-0000-4000-8000-{n:012d}",'
        '"source_run":"bench-run","venue":"{venue}","symbol":"BTC/USDT","side":"buy",'
        '"quantity":"0.{q}","order_type":"limit","limit_price":"64250.5",'
        '"reference_price":"64200","urgency":"medium","priority":50}}\n')


def make_inputs(directory: Path, total: int, per_file: int = 100_000) -> list[Path]:
    """``total`` intents in files of ``per_file``, a tick at the head of each file."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for start in range(0, total, per_file):
        path = directory / f"{start // per_file:04d}.jsonl"
        count = min(per_file, total - start)
        with open(path, "w") as handle:
            handle.write(f'{{"kind":"tick","time":{start}}}\n')
            handle.writelines(
                LINE.format(n=n, venue="binance" if n % 2 else "alpaca", q=n % 97 + 1)
                for n in range(start, start + count))
        paths.append(path)
    return paths


def peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child_throughput(total: int) -> dict[str, Any]:
    import anyio

    from execd.app.daemon import Daemon
    from execd.config import schema as config
    from execd.ledger.segments import list_segments
    from execd.service import logs

    logs.configure("warning")
    work = Path(tempfile.mkdtemp(dir=ROOT / "bench" / "out"))
    try:
        inputs = make_inputs(work / "in", total)
        write_lakehouse(work)
        text = CONFIG.format(work=work, poll=100)
        if os.environ.get("EXECD_BENCH_NOLIMITS"):
            text = text.split("[risk.limits]")[0]
        every = os.environ.get("EXECD_BENCH_CHECKPOINTS")
        if every is not None:
            # ledger.checkpoint_records for this run ("0": checkpoints off).
            text += f"\n[ledger]\ncheckpoint_records = {int(every)}\n"
        (work / "execd.toml").write_text(text)
        loaded = config.load(work / "execd.toml")
        daemon = Daemon(loaded, mode="replay", inputs=inputs, ledger_dir=work / "ledger")
        began = time.perf_counter()
        anyio.run(daemon.run)
        elapsed = time.perf_counter() - began
        assert daemon.writer is not None
        written = daemon.writer.committed
        size = sum(p.stat().st_size for p in list_segments(work / "ledger"))
        return {"intents": total, "seconds": elapsed, "per_second": total / elapsed,
                "records": written, "ledger_mb": size / 2**20, "peak_rss_mb": peak_rss_mb()}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def child_latency(rate: int, seconds: float) -> dict[str, Any]:
    import anyio

    from execd.app.daemon import Daemon
    from execd.config import schema as config
    from execd.model.messages import IntentIn
    from execd.service import logs

    logs.configure("warning")
    work = Path(tempfile.mkdtemp(dir=ROOT / "bench" / "out"))
    read_at: dict[int, float] = {}
    latencies: list[float] = []

    def on_read(batch: list[Any]) -> None:
        now = time.perf_counter()
        for item in batch:
            if type(item) is IntentIn:
                read_at[item.seq] = now

    def on_durable(commit: Any) -> None:
        now = time.perf_counter()
        for entry in commit.entries:
            began = read_at.pop(entry.seq, None)
            if began is not None:
                latencies.append(now - began)

    async def produce(inbox: Path, total: int, step: int) -> None:
        # Files of `step` intents every step/rate seconds, on a fixed schedule.
        interval = step / rate
        start = time.perf_counter()
        for index, first in enumerate(range(0, total, step)):
            due = start + index * interval
            delay = due - time.perf_counter()
            if delay > 0:
                await anyio.sleep(delay)
            temp = inbox / f".{index:06d}.tmp"
            temp.write_text("".join(LINE.format(n=n, venue="binance", q=n % 97 + 1)
                                    for n in range(first, first + step)))
            os.replace(temp, inbox / f"{index:06d}.jsonl")

    async def main() -> None:
        write_lakehouse(work)
        (work / "execd.toml").write_text(CONFIG.format(work=work, poll=1))
        loaded = config.load(work / "execd.toml")
        inbox = loaded.config.lakehouse.inbox
        inbox.mkdir(parents=True)
        daemon = Daemon(loaded, mode="run", read_probe=on_read, durable_probe=on_durable)
        total = int(rate * seconds)
        async with anyio.create_task_group() as tg:
            tg.start_soon(daemon.run)
            await produce(inbox, total, max(1, rate // 100))
            while len(latencies) < total:
                await anyio.sleep(0.01)
            daemon.stopping.set()

    try:
        anyio.run(main)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e3  # noqa: E731
    return {"rate": rate, "intents": len(latencies), "p50_ms": pick(0.50), "p99_ms": pick(0.99),
            "max_ms": latencies[-1] * 1e3}


def run_child(*args: str, root: Path = ROOT) -> dict[str, Any]:
    script = root / "bench" / "paper.py"
    out = subprocess.run([sys.executable, str(script), "--child", *args], capture_output=True,
                         text=True, check=True, cwd=root)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--rate", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--child", nargs="*")
    parser.add_argument("--against", help="a git revision to compare throughput with")
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        result = (child_throughput(int(rest[0])) if kind == "throughput"
                  else child_latency(int(rest[0]), float(rest[1])))
        print(json.dumps(result))
        return
    (ROOT / "bench" / "out").mkdir(exist_ok=True)
    if args.against:
        compare(args.against, [int(s) for s in args.sizes.split(",")], args.runs)
        return
    print(f"paper benchmark: {os.cpu_count()} cores, median of {args.runs} runs each")
    for size in (int(s) for s in args.sizes.split(",")):
        runs = [run_child("throughput", str(size)) for _ in range(args.runs)]
        rates = [r["per_second"] for r in runs]
        rss = [r["peak_rss_mb"] for r in runs]
        print(f"  throughput N={size:>9,}: {statistics.median(rates):>10,.0f} intents/s "
              f"(runs: {', '.join(f'{r:,.0f}' for r in rates)}); peak RSS "
              f"{statistics.median(rss):.0f} MB; ledger {runs[0]['ledger_mb']:.0f} MB")
    lat = [run_child("latency", str(args.rate), str(args.seconds)) for _ in range(args.runs)]
    p99s = ", ".join(f"{r['p99_ms']:.2f}" for r in lat)
    print(f"  latency at {args.rate:,}/s offered ({lat[0]['intents']:,} intents a run): "
          f"p50 {statistics.median(r['p50_ms'] for r in lat):.2f} ms, "
          f"p99 {statistics.median(r['p99_ms'] for r in lat):.2f} ms "
          f"(p99 runs: {p99s})")


def compare(revision: str, sizes: list[int], runs: int) -> None:
    """Throughput of this tree against ``revision``, runs alternating, medians and ratio."""
    other = Path(tempfile.mkdtemp(prefix="execd-bench-"))
    subprocess.run(["git", "worktree", "add", "--detach", str(other), revision], cwd=ROOT,
                   check=True, capture_output=True)
    try:
        (other / "bench" / "out").mkdir(parents=True, exist_ok=True)
        print(f"throughput, this tree vs {revision}: {os.cpu_count()} cores, "
              f"median of {runs} alternating runs")
        for size in sizes:
            here: list[float] = []
            there: list[float] = []
            for _ in range(runs):
                there.append(run_child("throughput", str(size), root=other)["per_second"])
                here.append(run_child("throughput", str(size))["per_second"])
            a, b = statistics.median(here), statistics.median(there)
            print(f"  N={size:>9,}: this tree {a:>10,.0f}/s, {revision} {b:>10,.0f}/s, "
                  f"ratio {a / b:.3f} (this: {', '.join(f'{r:,.0f}' for r in here)}; "
                  f"{revision}: {', '.join(f'{r:,.0f}' for r in there)})")
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(other)], cwd=ROOT,
                       check=False, capture_output=True)


if __name__ == "__main__":
    main()
