"""Duplicate-id index benchmark (issue 15, item 2): is the cost of an id flat in history?

For each size N (default 1M and 100M ids) an index directory is built once and cached
under ``var/bench-ids/``: the runs a daemon would hold after N ids arrived in
checkpoints of 50,000 (the size-tiered compaction of ``execd.ledger.index.store`` run
on the counts), written straight from sorted random keys (each the last plus a random
gap, so nothing is sorted), and the filter sized for N and filled with every key.
Then, each in a fresh child process (so RSS is its own):

* ``open``: ``IndexStore.open`` (reads and checks every run's meta: filter, fences and
  block CRCs) and the saved filter loaded; RSS held per million ids; then the fence
  tables filled, timed apart (the daemon fills them in the checkpointer's thread at
  its first fold, after start-up);
* ``duplicate``: ``IdIndex.add`` of ids that are in the runs (answer False), and the
  blocks one reads (the run holding it, plus the other runs' filter false positives);
* ``new``: ``IdIndex.add`` of fresh random ids (answer True; 1% of them pass the
  filter's "maybe" and pay the run lookups), then again as duplicates of recent ids
  (still in ``recent``: a set lookup);
* today's ``SeenIds`` at 1M and 10M ids: the same two costs and its RSS per million;
* ``write``: a 50,000-id run written (two fsyncs), a compaction of four 250,000-id
  runs, and a filter built from 1M ids of runs (start-up without a saved filter).

Times are per id, medians over ``--runs`` rounds (sizes alternate within a round);
the run files are in the page cache, as they are in a daemon that has been running.
Usage: ``python bench/ids.py [--runs 3] [--sizes 1000000,100000000]
[--seen 1000000,10000000]``. Building the 100M cache takes about ten minutes and
1.8 GB (a new run format or generator ``VERSION`` builds it again).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from execd.ledger.index.filter import BlockedBloom, probe  # noqa: E402
from execd.ledger.index.ids import IdIndex  # noqa: E402
from execd.ledger.index.runs import Run, RunInfo  # noqa: E402
from execd.ledger.index.store import IndexStore, plan_compaction  # noqa: E402
from execd.sentinel.core import SeenIds  # noqa: E402

CACHE = ROOT / "var" / "bench-ids"
VERSION = 3  # of the generator and run format (3: runs with their meta); a new one: a new cache
CHECKPOINT = 50_000
PROBES_DUP, PROBES_NEW = 50_000, 200_000


def layout(total: int) -> list[int]:
    """The run sizes after ``total`` ids arrived in checkpoints, oldest first."""
    infos: list[RunInfo] = []
    for n in range(total // CHECKPOINT):
        infos.append(RunInfo(f"r{n}", CHECKPOINT, n, 0, ""))
        while merged := plan_compaction(infos):
            gone = {info.name for info in merged}
            infos = [info for info in infos if info.name not in gone]
            infos.append(RunInfo(f"m{n}-{len(infos)}", sum(i.count for i in merged), n, 0, ""))
    return [info.count for info in infos]


def _run_keys(rng: random.Random, count: int, bloom: BlockedBloom,
              dups: list[bytes], every: int) -> Iterator[bytes]:
    # Sorted random keys without sorting: each one the last plus a random gap, the
    # gaps averaging at most half the key space over ``count`` (so the last key stays
    # inside 128 bits), a few hundred nanoseconds a key.
    bits = ((1 << 128) // (count + 1)).bit_length() - 1
    key, draw, add = 0, rng.getrandbits, bloom.add
    for n in range(count):
        key += 1 + draw(bits)
        add(key)
        record = key.to_bytes(16)
        if n % every == 0:
            dups.append(record)
        yield record


def build(total: int) -> Path:
    """The cached index of ``total`` ids (built on first use)."""
    where = CACHE / f"{total}-v{VERSION}"
    if (where / "meta.json").exists():
        return where
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir(parents=True)
    started = time.perf_counter()
    store = IndexStore.create(where / "index")
    bloom = BlockedBloom(total)
    rng = random.Random(total)
    dups: list[bytes] = []
    every = max(1, total // PROBES_DUP)
    for seq, count in enumerate(layout(total), 1):
        store.write_run(_run_keys(rng, count, bloom, dups, every), seq, capacity=count).close()
    store.close()
    (where / "filter.bin").write_bytes(bloom.to_bytes())
    rng.shuffle(dups)
    (where / "dups.bin").write_bytes(b"".join(dups[:PROBES_DUP]))
    (where / "meta.json").write_text(json.dumps({"ids": total, "layout": layout(total)}))
    print(f"  built {total:,} ids in {time.perf_counter() - started:.0f} s: runs "
          f"{layout(total)}", file=sys.stderr)
    return where


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _per_op(function: Any, items: list[Any]) -> float:
    started = time.perf_counter()
    answers = list(map(function, items))
    elapsed = time.perf_counter() - started
    assert len(set(answers)) == 1, "an add answered unlike the others"
    return elapsed / len(items) * 1e6


def child_index(total: int) -> dict[str, Any]:
    """Open the cached index of ``total`` ids; time duplicates and new ids."""
    where = build(total)
    before = _rss_mb()
    started = time.perf_counter()
    store = IndexStore.open(where / "index")
    opened = store.open_runs()
    store.close()
    bloom = BlockedBloom(total, data=(where / "filter.bin").read_bytes())
    index = IdIndex(opened, bloom=bloom)
    open_s = time.perf_counter() - started
    # The daemon fills the runs' fence tables in the checkpointer's thread at its first
    # fold (app/id_runs.py ``prepare``); timed apart, as it is not start-up's.
    started = time.perf_counter()
    for run in opened:
        run.fences.fill()
    fill_s = time.perf_counter() - started
    held = _rss_mb() - before
    data = (where / "dups.bin").read_bytes()
    dups = [uuid.UUID(bytes=data[i:i + 16]) for i in range(0, len(data), 16)]
    rng = random.Random(7)
    news = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(PROBES_NEW)]
    dup_us = _per_op(index.add, dups)
    assert index.add(dups[0]) is False
    new_us = _per_op(index.add, news)
    recent_us = _per_op(index.add, news[:PROBES_DUP])  # still in ``recent``: answer False
    return {"open_s": open_s, "fill_s": fill_s, "mb_per_m": held / (total / 1e6),
            "dup_us": dup_us,
            "new_us": new_us, "recent_us": recent_us, "runs": len(opened),
            "fp": index.false_positives / len(news), "reads": _reads(opened, dups)}


def _reads(opened: list[Run], dups: list[uuid.UUID]) -> float:
    # Blocks a duplicate reads: the runs asked largest first, up to the one holding it,
    # whose filters say "maybe" (one is the holder; the rest are their false positives).
    reads = 0
    order = sorted(opened, key=len, reverse=True)
    for intent_id in dups:
        x, m = probe(intent_id.int)
        for run in order:
            if run.filter.may_hold(x, m):
                reads += 1
                if run.has(intent_id.int):
                    break
    return reads / len(dups)


def child_seen(total: int) -> dict[str, Any]:
    """Today's SeenIds holding ``total`` random ids: the same two costs and its RSS."""
    rng = random.Random(total)
    before = _rss_mb()
    seen = SeenIds()
    dups = []
    every = max(1, total // PROBES_DUP)
    for n in range(total):
        intent_id = uuid.UUID(int=rng.getrandbits(128))
        seen.add(intent_id)
        if n % every == 0:
            dups.append(intent_id)
    held = _rss_mb() - before
    news = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(PROBES_NEW)]
    return {"mb_per_m": held / (total / 1e6), "dup_us": _per_op(seen.add, dups),
            "new_us": _per_op(seen.add, news)}


def child_write() -> dict[str, Any]:
    """A checkpoint's run written, a compaction of four runs, a filter built from runs."""
    rng = random.Random(3)
    with tempfile.TemporaryDirectory(dir=CACHE) as work:
        store = IndexStore.create(Path(work))
        keys = sorted(rng.getrandbits(128).to_bytes(16) for _ in range(CHECKPOINT))
        started = time.perf_counter()
        store.write_run(keys, 1).close()
        write_us = (time.perf_counter() - started) / CHECKPOINT * 1e6
        quarter = 250_000
        for seq in range(2, 5):
            more = sorted(rng.getrandbits(128).to_bytes(16) for _ in range(quarter))
            store.write_run(more, seq).close()
        store.write_run(sorted(rng.getrandbits(128).to_bytes(16)
                               for _ in range(quarter - CHECKPOINT)), 5).close()
        started = time.perf_counter()
        done = store.compact(factor=4, base=quarter)
        assert done is not None
        compact_us = (time.perf_counter() - started) / (4 * quarter - CHECKPOINT) * 1e6
        opened = store.open_runs()
        started = time.perf_counter()
        IdIndex(opened).close()
        build_us = (time.perf_counter() - started) / sum(map(len, opened)) * 1e6
        done.added.close()
        store.close()
    return {"write_us": write_us, "compact_us": compact_us, "build_us": build_us}


def _child(kind: str, size: int) -> dict[str, Any]:
    out = subprocess.run([sys.executable, str(Path(__file__)), "--child", kind, str(size)],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"child {kind} {size} failed:\n{out.stderr}")
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def _median(rows: list[dict[str, Any]], key: str) -> float:
    return statistics.median(row[key] for row in rows)


def main() -> None:
    """Measure, in alternating rounds, and print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="1000000,100000000")
    parser.add_argument("--seen", default="1000000,10000000")
    parser.add_argument("--child", nargs=2)
    args = parser.parse_args()
    if args.child:
        kind, size = args.child[0], int(args.child[1])
        CACHE.mkdir(parents=True, exist_ok=True)
        done = {"index": child_index, "seen": child_seen}
        print(json.dumps(child_write() if kind == "write" else done[kind](size)))
        return
    sizes = [int(s) for s in args.sizes.split(",") if s]
    seen_sizes = [int(s) for s in args.seen.split(",") if s]
    for size in sizes:
        build(size)
    results: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for _ in range(args.runs):
        for size in sizes:
            results.setdefault(("index", size), []).append(_child("index", size))
        for size in seen_sizes:
            results.setdefault(("seen", size), []).append(_child("seen", size))
        results.setdefault(("write", 0), []).append(_child("write", 0))
    _report(results, sizes, seen_sizes, args.runs)


def _report(results: dict[tuple[str, int], list[dict[str, Any]]], sizes: list[int],
            seen_sizes: list[int], rounds: int) -> None:
    print(f"duplicate-id index, medians of {rounds} runs (µs per id; MB held per million ids)")
    for size in sizes:
        rows = results[("index", size)]
        print(f"  IdIndex  N={size:>11,}: duplicate {_median(rows, 'dup_us'):5.2f} µs "
              f"({_median(rows, 'reads'):.3f} blocks read), new {_median(rows, 'new_us'):5.2f} "
              f"µs, duplicate of a recent id {_median(rows, 'recent_us'):5.2f} µs, "
              f"{_median(rows, 'mb_per_m'):5.2f} MB/M, open {_median(rows, 'open_s'):6.2f} s "
              f"(fence tables filled after: {_median(rows, 'fill_s'):.2f} s), "
              f"{rows[0]['runs']} runs, filter maybe on new {_median(rows, 'fp') * 100:.2f}%")
    for size in seen_sizes:
        rows = results[("seen", size)]
        print(f"  SeenIds  N={size:>11,}: duplicate {_median(rows, 'dup_us'):5.2f} µs, "
              f"new {_median(rows, 'new_us'):5.2f} µs, {_median(rows, 'mb_per_m'):5.2f} MB/M")
    rows = results[("write", 0)]
    print(f"  run of {CHECKPOINT:,} written: {_median(rows, 'write_us'):.2f} µs/id; "
          f"compaction of 1M: {_median(rows, 'compact_us'):.2f} µs/id; "
          f"filter built from runs: {_median(rows, 'build_us'):.2f} µs/id")
    if len(sizes) >= 2:
        low, high = (results[("index", s)] for s in (sizes[0], sizes[-1]))
        for key in ("dup_us", "new_us", "recent_us", "mb_per_m"):
            print(f"  IdIndex {key} at {sizes[-1]:,} / at {sizes[0]:,}: "
                  f"{_median(high, key) / _median(low, key):.2f}")
    if ("seen", sizes[0]) in results and ("index", sizes[0]) in results:
        ours, today = results[("index", sizes[0])], results[("seen", sizes[0])]
        for key in ("dup_us", "new_us", "mb_per_m"):
            print(f"  IdIndex / SeenIds at {sizes[0]:,}, {key}: "
                  f"{_median(ours, key) / _median(today, key):.2f}")


if __name__ == "__main__":
    main()
