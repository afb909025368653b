"""Sentinel benchmark: the Risk Sentinel's synchronous core alone, with every limit on.

N intents (decoded beforehand, outside the timer) go through ``SentinelCore.handle_batch``
with a :class:`~execd.sentinel.risk.Risk` whose config turns on every per-intent check
that ``bench/paper.py`` turns on (registry, price band, notional, exposure, leverage,
rate), with limits wide enough that every intent passes, on two paper venues (whose
orders settle at once), plus sells that shrink what the buys built. No I/O, no event
loop: this is the sentinel's share of the paper pipeline's cost per intent.

Each run is a fresh child process, timed in CPU seconds (``time.process_time``) so that
other work on the machine weighs less. Usage:
``python bench/sentinel.py [--runs 5] [--size 200000]``, or
``python bench/sentinel.py --against REV``: this tree and git revision REV (in a temporary
worktree, imported from there by this script's child) in alternating runs; medians and
their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

sys.path.insert(0, str(ROOT / "bench"))
from paper import LIMITS  # noqa: E402 - the paper benchmark's limits, every check on

CONFIG = """
[daemon]
lakehouse = "{work}/lakehouse"
ledger_dir = "{work}/ledger"
""" + LIMITS

LINE = ('{{"kind":"intent","intent_id":"00000000-0000-4000-8000-{n:012d}",'
        '"source_run":"bench-run","venue":"{venue}","symbol":"BTC/USDT","side":"{side}",'
        '"quantity":"0.{q}","order_type":"limit","limit_price":"64250.5",'
        '"reference_price":"64200","urgency":"medium","priority":50}}\n')

BATCH = 1000


def child(root: Path, total: int) -> dict[str, Any]:
    """Time ``total`` intents through the sentinel core of the tree at ``root``."""
    sys.path.insert(0, str(root))
    import msgspec

    from execd.config import schema as config
    from execd.model.messages import ContextRecord, IntentIn, OrderIntent, Source
    from execd.reader.context import LakehouseContext
    from execd.sentinel.risk import Risk
    try:
        from execd.sentinel.core import SeenIds, SentinelCore
    except ImportError:  # a revision from before the core/shell split
        from execd.sentinel.shell import SeenIds, SentinelCore  # type: ignore[attr-defined,no-redef]

    with tempfile.TemporaryDirectory() as work:
        (Path(work) / "execd.toml").write_text(CONFIG.format(work=work))
        loaded = config.load(Path(work) / "execd.toml")
    risk = Risk(loaded.config)
    risk.set_context(LakehouseContext(
        frozenset(("bench-run",)), None, {}, {}, {},
        ContextRecord(1, None, None, 0, None, 0, None, 0, None)))
    core = SentinelCore(loaded.config.planes(), SeenIds(), risk)
    decode = msgspec.json.Decoder(OrderIntent).decode
    source = Source("bench.jsonl", 0, 0)
    items = []
    for n in range(total):
        # Every fourth intent sells a little of what the buys before it built.
        raw = LINE.format(n=n, venue="binance" if n % 2 else "alpaca",
                          side="sell" if n % 4 == 3 else "buy", q=n % 97 + 1).encode()
        items.append(IntentIn(n, 0, source, decode(raw), raw))
    batches = [items[i:i + BATCH] for i in range(0, total, BATCH)]
    # CPU time of this process: on a shared machine, wall time mostly measures the others.
    began = time.process_time()
    accepted = 0
    for batch in batches:
        decided = core.handle_batch(batch)  # type: ignore[arg-type]
        accepted += sum(1 for out in decided if type(out).__name__ == "Accepted")
    elapsed = time.process_time() - began
    assert accepted == total, f"{total - accepted} intents refused: the bench must pass them"
    return {"intents": total, "seconds": elapsed, "per_second": total / elapsed}


def run_child(tree: Path, total: int) -> float:
    """One fresh process timing the sentinel of ``tree``; intents per second."""
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "sentinel.py"), "--child",
                          str(tree), str(total)], capture_output=True, text=True, check=True,
                         cwd=tree)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return float(result["per_second"])


def compare(revision: str, total: int, runs: int) -> None:
    """This tree against ``revision``, runs alternating, medians and their ratio."""
    other = Path(tempfile.mkdtemp(prefix="execd-bench-sentinel-"))
    subprocess.run(["git", "worktree", "add", "--detach", str(other), revision], cwd=ROOT,
                   check=True, capture_output=True)
    try:
        here: list[float] = []
        there: list[float] = []
        for _ in range(runs):
            there.append(run_child(other, total))
            here.append(run_child(ROOT, total))
        a, b = statistics.median(here), statistics.median(there)
        print(f"sentinel core + risk, N={total:,}, {os.cpu_count()} cores, median of {runs} "
              f"alternating runs: this tree {a:,.0f}/s, {revision} {b:,.0f}/s, ratio "
              f"{a / b:.3f} (this: {', '.join(f'{r:,.0f}' for r in here)}; "
              f"{revision}: {', '.join(f'{r:,.0f}' for r in there)})")
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(other)], cwd=ROOT,
                       check=False, capture_output=True)


def main() -> None:
    """Parse the command line and run the benchmark (or one child of it)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size", type=int, default=200_000)
    parser.add_argument("--child", nargs=2, metavar=("ROOT", "N"))
    parser.add_argument("--against", help="a git revision to compare with")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(Path(args.child[0]), int(args.child[1]))))
        return
    if args.against:
        compare(args.against, args.size, args.runs)
        return
    rates = [run_child(ROOT, args.size) for _ in range(args.runs)]
    print(f"sentinel core + risk, N={args.size:,}: {statistics.median(rates):,.0f} intents/s "
          f"(runs: {', '.join(f'{r:,.0f}' for r in rates)})")


if __name__ == "__main__":
    main()
