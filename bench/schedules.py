"""Scheduled parent orders on the paper plane: ``make bench`` (after bench/paper.py).

N open TWAP schedules of S slices each (default 10,000 of 100), all admitted at logical
time 0 over the window [0, S), then driven by S ticks (one a slice): every tick releases
one child of every open schedule. The whole pipeline runs (reader, sentinel with every
risk check on, router, paper adapter, ledger writer with group commit and fsync), in a
fresh child process per run, so peak RSS (VmHWM) belongs to one run.

Reported, medians over ``--runs``: child intents per second (children recorded over
the run's wall time, parents and ticks included in that time), and peak RSS. The
targets (issue "Parent orders"): at least 50,000 child intents/s, under 300 MB.

Usage: ``python bench/schedules.py [--runs 3] [--parents 10000] [--slices 100]``
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

from bench.paper import CONFIG, peak_rss_mb, write_lakehouse  # noqa: E402

PARENT = ('{{"kind":"intent","intent_id":"00000000-0000-4000-8000-{n:012d}",'
          '"source_run":"bench-run","venue":"{venue}","symbol":"S{symbol}/USDT","side":"buy",'
          '"quantity":"{quantity}","order_type":"limit","limit_price":"64250.5",'
          '"reference_price":"64200","execution":{{"algorithm":"twap","start":0,'
          '"end":{slices},"slices":{slices}}}}}\n')


def make_inputs(directory: Path, parents: int, slices: int) -> list[Path]:
    """The parents (one lot a slice: quantity ``slices`` hundredths), then a tick a slice."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "0000.jsonl"
    quantity = f"{slices // 100}.{slices % 100:02d}"
    with open(path, "w") as handle:
        handle.write('{"kind":"tick","time":0}\n')
        handle.writelines(PARENT.format(n=n, venue="binance" if n % 2 else "alpaca",
                                        symbol=n % 50, quantity=quantity, slices=slices)
                          for n in range(parents))
        handle.writelines(f'{{"kind":"tick","time":{t}}}\n' for t in range(1, slices + 1))
    return [path]


def child(parents: int, slices: int) -> dict[str, Any]:
    import anyio

    from execd.app.daemon import Daemon
    from execd.config import schema as config
    from execd.ledger.segments import list_segments
    from execd.service import logs

    logs.configure("warning")
    work = Path(tempfile.mkdtemp(dir=ROOT / "bench" / "out"))
    try:
        inputs = make_inputs(work / "in", parents, slices)
        write_lakehouse(work)
        text = CONFIG.format(work=work, poll=100)
        every = os.environ.get("EXECD_BENCH_CHECKPOINTS")
        if every is not None:  # as for bench/paper.py ("0": checkpoints off)
            text += f"\n[ledger]\ncheckpoint_records = {int(every)}\n"
        (work / "execd.toml").write_text(text)
        loaded = config.load(work / "execd.toml")
        daemon = Daemon(loaded, mode="replay", inputs=inputs, ledger_dir=work / "ledger")
        began = time.perf_counter()
        anyio.run(daemon.run)
        elapsed = time.perf_counter() - began
        assert daemon.writer is not None
        size = sum(p.stat().st_size for p in list_segments(work / "ledger"))
        children = parents * slices
        return {"children": children, "seconds": elapsed, "per_second": children / elapsed,
                "records": daemon.writer.committed, "ledger_mb": size / 2**20,
                "peak_rss_mb": peak_rss_mb()}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--parents", type=int, default=10_000)
    parser.add_argument("--slices", type=int, default=100)
    parser.add_argument("--child", action="store_true")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.parents, args.slices)))
        return
    (ROOT / "bench" / "out").mkdir(exist_ok=True)
    runs = []
    for _ in range(args.runs):
        out = subprocess.run([sys.executable, __file__, "--child", "--parents",
                              str(args.parents), "--slices", str(args.slices)],
                             capture_output=True, text=True, check=True, cwd=ROOT)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    rates = [r["per_second"] for r in runs]
    rss = [r["peak_rss_mb"] for r in runs]
    print(f"schedules benchmark: {args.parents:,} TWAPs of {args.slices} slices "
          f"({runs[0]['children']:,} children, {runs[0]['records']:,} records, ledger "
          f"{runs[0]['ledger_mb']:.0f} MB), median of {args.runs} runs")
    print(f"  {statistics.median(rates):,.0f} child intents/s (runs: "
          f"{', '.join(f'{r:,.0f}' for r in rates)}); peak RSS {statistics.median(rss):.0f} MB "
          f"(runs: {', '.join(f'{r:.0f}' for r in rss)})")


if __name__ == "__main__":
    main()
