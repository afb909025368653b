"""Costs that must not grow with history: ``make bench-scale``.

On paper ledgers of 1M and 10M records (built by ``bench/scale_ledger.py`` and cached
under ``var/bench-scale/``), each measure runs the real command in a fresh process and
takes its wall time and peak RSS (``ru_maxrss`` from ``wait4`` on that process):

* start-up until ready: ``execd run`` over the ledger and an empty inbox, from spawn
  to ``READY=1`` on a notify socket the bench binds (as systemd's), then SIGTERM; its
  ledger is a fresh copy each run (it appends a start and a stop record);
* ``execd ledger verify`` of the whole ledger;
* ``execd ledger tail --intent ID`` for an intent 100 from the end: through the
  positions index the daemon wrote (a primed ledger), and without it (the same
  segments, linked into a directory without ``index/``), whose output must be the same.

A tree that takes checkpoints is measured on its own primed copy of the ledger
(``bench/scale_prime.py``): the checkpoints and index its daemon wrote itself.

Figures are medians of ``--runs`` runs, the measures, the sizes and (with ``--against``)
the trees alternating within a round, beside the targets of the project's issue 15. If
``bench/ids.py`` exists, its table (the duplicate-id index) follows.

Usage: ``python bench/scale.py [--sizes 1000000,10000000] [--runs 3] [--measures startup,...]
[--against REV]``. Each round takes every size in turn (start-up at 1M, then at 10M, ...),
so the ratio of two sizes compares runs minutes apart.
``--against REV`` measures git revision REV too (its files exported to a temporary
directory, its own ``execd`` started over the same ledgers) and prints both.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import paper  # noqa: E402  (bench/paper.py: the same config and lakehouse)
import scale_ledger  # noqa: E402
import scale_prime  # noqa: E402

CACHE = ROOT / "var" / "bench-scale"
CONFIG = paper.CONFIG.replace('ledger_dir = "{work}/ledger"', 'ledger_dir = "{ledger}"')
READY_TIMEOUT_S = 1800.0  # start-up over 10M records took about 2 min before issue 15


class Tree(NamedTuple):
    """A source tree whose ``execd`` is measured: this checkout, or an exported revision."""

    name: str
    root: Path


class Measure(NamedTuple):
    """One measured process: wall seconds and peak RSS in MB."""

    seconds: float
    mb: float


def _config(work: Path, ledger: Path) -> Path:
    """The bench config (bench/paper.py's limits and planes) over ``ledger``."""
    paper.write_lakehouse(work)
    (work / "lakehouse" / "inbox").mkdir(parents=True, exist_ok=True)
    path = work / "execd.toml"
    path.write_text(CONFIG.format(work=work, ledger=ledger, poll=100))
    return path


def _spawn(tree: Tree, args: list[str], work: Path, **extra: Any) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(tree.root), "NO_COLOR": "1"}
    env.update(extra.pop("env", {}))
    with open(work / "stdout", "ab") as out, open(work / "stderr", "ab") as err:
        return subprocess.Popen([sys.executable, "-m", "execd", *args], cwd=tree.root,
                                env=env, stdout=out, stderr=err, **extra)


def _reap(child: subprocess.Popen[bytes], work: Path, what: str) -> float:
    """Wait for ``child``; its peak RSS in MB. RuntimeError if it failed."""
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        tail = (work / "stderr").read_text()[-2000:] + (work / "stdout").read_text()[-2000:]
        raise RuntimeError(f"{what} exited {child.returncode}:\n{tail}")
    return usage.ru_maxrss / 1024


def _fresh_ledger(cached: Path, ledger: Path) -> None:
    """A ledger ``execd run`` may append to: the last segment (the only one it writes)
    and everything that is not a segment copied, the older segments hard-linked.

    The copies are synced before the daemon starts: a daemon's ledger is at rest on
    disk, and its first fsync would otherwise write out the bench's own copy (161 MB of
    last segment at 10M records, 5 MB at 1M: a tenth of a second that is not start-up's).
    """
    ledger.mkdir()
    segments = sorted(cached.glob("segment-*.jsonl"))
    for path in segments[:-1]:
        os.link(path, ledger / path.name)
    for path in cached.iterdir():
        if path in segments[:-1]:
            continue
        if path.is_dir():
            shutil.copytree(path, ledger / path.name)
        else:
            shutil.copy2(path, ledger / path.name)
    os.sync()


def startup(tree: Tree, cached: Path, work: Path) -> Measure:
    """Spawn to ``READY=1`` of ``execd run`` over a copy of ``cached``, then SIGTERM."""
    ledger = work / "ledger"
    _fresh_ledger(cached, ledger)
    config = _config(work, ledger)
    address = str(work / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(address)
        notify.settimeout(0.2)
        began = time.perf_counter()
        child = _spawn(tree, ["run", "--config", str(config), "--log-format", "json"], work,
                       env={"NOTIFY_SOCKET": address})
        ready = _await_ready(notify, child, began)
        child.send_signal(signal.SIGTERM)
        mb = _reap(child, work, "execd run")
    if ready is None:
        raise RuntimeError(f"execd run sent no READY=1:\n{(work / 'stdout').read_text()[-2000:]}")
    return Measure(ready - began, mb)


def _await_ready(notify: socket.socket, child: subprocess.Popen[bytes],
                 began: float) -> float | None:
    """The moment READY=1 arrived; None if the child ended first or took too long."""
    while time.perf_counter() - began < READY_TIMEOUT_S:
        try:
            datagram = notify.recv(4096)
        except TimeoutError:
            # WNOWAIT: an ended child stays waitable, so _reap still gets its rusage.
            if os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
                return None
            continue
        if b"READY=1" in datagram.split(b"\n"):
            return time.perf_counter()
    return None


def verify(tree: Tree, cached: Path, work: Path) -> Measure:
    """``execd ledger verify`` of the whole cached ledger (it only reads)."""
    config = _config(work, cached)
    began = time.perf_counter()
    child = _spawn(tree, ["ledger", "verify", "--config", str(config)], work)
    mb = _reap(child, work, "execd ledger verify")
    return Measure(time.perf_counter() - began, mb)


def tail(tree: Tree, cached: Path, work: Path, intent: str, indexed: bool = True) -> Measure:
    """``execd ledger tail --intent`` of one intent near the ledger's end; not
    ``indexed``: over the same segments without the positions index (linked into a
    directory of their own), its output checked against the indexed one's."""
    ledger = cached
    if not indexed:
        ledger = work / "unindexed"
        ledger.mkdir()
        for path in cached.iterdir():
            if path.name != "index":
                (ledger / path.name).symlink_to(path)
    config = _config(work, ledger)
    began = time.perf_counter()
    child = _spawn(tree, ["ledger", "tail", "--config", str(config), "--intent", intent], work)
    mb = _reap(child, work, "execd ledger tail")
    elapsed = time.perf_counter() - began
    shown = (work / "stdout").read_bytes()
    if intent.encode() not in shown:
        raise RuntimeError(f"execd ledger tail did not print intent {intent}")
    said = (work / "stderr").read_text()
    if indexed and (tree.root / "execd" / "cli" / "tail_index.py").exists() and said:
        raise RuntimeError(f"execd ledger tail did not read through the index: {said}")
    _TAILED.setdefault((tree.name, str(cached), intent), shown)
    if _TAILED[(tree.name, str(cached), intent)] != shown:
        raise RuntimeError("execd ledger tail printed otherwise with and without the index")
    return Measure(elapsed, mb)


# What each tail printed, by tree, ledger and intent: with and without the index alike.
_TAILED: dict[tuple[str, str, str], bytes] = {}


def _in_scratch(measure: Any, *args: Any) -> Measure:
    """Run one measure in a scratch directory of its own, removed after it."""
    scratch = CACHE / "runs"
    scratch.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=scratch))
    try:
        result: Measure = measure(args[0], args[1], work, *args[2:])
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


MEASURES = ("startup", "verify", "tail", "tail_linear")


def measure(trees: list[Tree], sizes: dict[int, tuple[Path, dict[str, Any]]], runs: int,
            measures: tuple[str, ...] = MEASURES) -> dict[str, dict[int, dict[str, list[Measure]]]]:
    """Each of ``measures`` ``runs`` times on every tree and every ledger size, a round
    going through every size and tree in turn, so that a ratio of two sizes (or trees)
    compares runs made minutes apart, not phases of the bench half an hour apart; the
    runs by tree, size and name."""
    results: dict[str, dict[int, dict[str, list[Measure]]]] = {
        tree.name: {size: {name: [] for name in measures} for size in sizes} for tree in trees}
    ledgers = {(tree.name, size): scale_prime.prime(tree.root, cached, _config, _fresh_ledger)
               for size, (cached, _) in sizes.items() for tree in trees}
    steps: dict[str, Any] = {
        "startup": lambda tree, ledger, meta: _in_scratch(startup, tree, ledger),
        "verify": lambda tree, ledger, meta: _in_scratch(verify, tree, ledger),
        "tail": lambda tree, ledger, meta: _in_scratch(tail, tree, ledger, meta["tail_intent"]),
        "tail_linear": lambda tree, ledger, meta: _in_scratch(tail, tree, ledger,
                                                              meta["tail_intent"], False),
    }
    for round_ in range(runs):
        for size, (_, meta) in sizes.items():
            for tree in trees:
                mine = results[tree.name][size]
                for name in measures:
                    mine[name].append(steps[name](tree, ledgers[(tree.name, size)], meta))
                print(f"    round {round_ + 1}, {size:,}, {tree.name}: " + ", ".join(
                    f"{name} {m[-1].seconds:.2f} s {m[-1].mb:.0f} MB" for name, m in mine.items()),
                    flush=True)
    return results


def _median(runs: list[Measure]) -> Measure:
    return Measure(statistics.median(m.seconds for m in runs),
                   statistics.median(m.mb for m in runs))


def print_table(tree: str, rows: dict[int, dict[str, list[Measure]]]) -> None:
    """The medians of one tree, a row per ledger size (a measure not taken: blank)."""
    first = next(iter(rows.values()))
    print(f"\n{tree}: medians of {len(next(iter(first.values())))} runs")
    print("| records | start-up s | start-up RSS MB | verify s | verify MB | tail s | tail MB "
          "| tail without index s | MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for size, runs in sorted(rows.items()):
        cells = []
        for name in MEASURES:
            if runs.get(name):
                found = _median(runs[name])
                cells += [f"{found.seconds:.2f}", f"{found.mb:.0f}"]
            else:
                cells += ["", ""]
        print(f"| {size:,} | " + " | ".join(cells) + " |")
    print_targets(rows)


def print_targets(rows: dict[int, dict[str, list[Measure]]]) -> None:
    """Issue 15's targets, each met or not, at the largest size measured."""
    big = max(rows)
    checks = []
    if rows[big].get("startup"):
        up = _median(rows[big]["startup"])
        checks += [(f"start-up under 2 s at {big:,}", f"{up.seconds:.2f} s", up.seconds < 2.0),
                   (f"peak RSS at start-up under 200 MB at {big:,}", f"{up.mb:.0f} MB",
                    up.mb < 200)]
        small = min(rows)
        if small != big:
            ratio = up.seconds / _median(rows[small]["startup"]).seconds
            checks.append((f"start-up at {big:,} within 20% of {small:,}", f"x{ratio:.2f}",
                           ratio <= 1.2))
    readers = [_median(rows[big][name]).mb for name in ("verify", "tail") if rows[big].get(name)]
    if readers:
        checks.append((f"verify and tail under 64 MB at {big:,}", f"{max(readers):.0f} MB",
                       max(readers) < 64))
    for what, found, met in checks:
        print(f"  target: {what}: {found}, {'met' if met else 'NOT met'}")


def export(revision: str) -> Tree:
    """``revision``'s files in a temporary directory (git archive: no worktree is made)."""
    target = Path(tempfile.mkdtemp(prefix="against-", dir=CACHE))
    archive = subprocess.run(["git", "archive", "--format=tar", revision], cwd=ROOT,
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return Tree(revision, target)


def ids_table() -> None:
    """The duplicate-id index's figures, from bench/ids.py once it exists."""
    script = ROOT / "bench" / "ids.py"
    if not script.exists():
        print("\nid index: skipped, bench/ids.py does not exist in this tree yet")
        return
    print("\nid index (bench/ids.py):", flush=True)
    subprocess.run([sys.executable, str(script)], cwd=ROOT, check=True)


def main() -> None:
    """Build (or find) the ledgers, measure, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000000,10000000",
                        help="ledger sizes in records, comma-separated (default: "
                             "1000000,10000000)")
    parser.add_argument("--runs", type=int, default=3, help="runs per measure (default: 3)")
    parser.add_argument("--measures", default=",".join(MEASURES),
                        help=f"which measures, comma-separated (default: all of "
                             f"{','.join(MEASURES)})")
    parser.add_argument("--against", metavar="REV",
                        help="a git revision to measure too, alternating (default: none)")
    args = parser.parse_args()
    from execd.config import schema as config

    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as scratch:
        loaded = config.load(_config(Path(scratch), Path(scratch) / "ledger")).config
    trees = [Tree("this tree", ROOT)]
    if args.against:
        trees.append(export(args.against))
    print(f"scale benchmark: {os.cpu_count()} cores, {args.runs} runs, trees: "
          f"{', '.join(t.name for t in trees)}", flush=True)
    measures = tuple(name for name in args.measures.split(",") if name)
    unknown = set(measures) - set(MEASURES)
    if unknown:
        parser.error(f"--measures: unknown {sorted(unknown)}; expected some of {MEASURES}")
    try:
        sizes = {}
        for size in (int(s) for s in args.sizes.split(",")):
            cached = scale_ledger.build(CACHE, size, loaded)
            meta = json.loads((cached / "meta.json").read_text())
            print(f"  {size:,} records: {meta['segments']} segments, {meta['bytes'] / 2**20:,.0f} "
                  f"MB, {meta['intents']:,} intents (built in {meta['seconds']} s; "
                  f"{cached.name})", flush=True)
            sizes[size] = (cached, meta)
        rows = measure(trees, sizes, args.runs, measures)
    finally:
        for tree in trees[1:]:
            shutil.rmtree(tree.root, ignore_errors=True)
    for name, by_size in rows.items():
        print_table(name, by_size)
    if set(measures) == set(MEASURES):  # a run of some measures only is a quick look
        ids_table()


if __name__ == "__main__":
    main()
