"""Every crash point, every file state it can leave: restart keeps one outcome per line.

A full run commits one record at a time, so every record boundary is a point where
the daemon could have died. For each, the ledger is cut there and the lakehouse is
rebuilt in each state that crash could leave (a finished file already moved or still
in work/, the next file claimed or not), the daemon restarts, and the invariants are
checked.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest

from execd.app.daemon import Daemon
from execd.config import schema as config
from execd.ledger import checkpoints
from execd.ledger.recovery import recover
from execd.ledger.scan import scan
from execd.ledger.snapshot import encode_snapshot, fold_key
from execd.model import reasons
from execd.sentinel.risk import Risk
from tests.helpers import intent, records, write_config

LONG = 300  # over the 256-byte line limit below


def line(n: int, **fields: Any) -> bytes:
    return json.dumps(intent(n, **fields)).encode()


FILES = {
    "a.jsonl": b"\n  \n" + line(1) + b"\n" + b'{"kind":"tick","time":5}\n' + line(2) + b"\r\n"
               + b"garbage\n" + line(3),
    "b.jsonl": b"",
    "c.jsonl": b"\n\n",
    "d.jsonl": b"x" * LONG + b"\n" + line(4) + b"\n" + line(1) + b"\n" + b"y" * LONG,
}
# Delivered again once the originals are consumed: refused whole, never read.
REPEATS = {"a.jsonl": FILES["a.jsonl"], "b.jsonl": line(9) + b"\n"}


async def run_until_idle(directory: Path, deliver: list[str], every: int = 0) -> None:
    """Run until idle; then deliver the ``deliver`` repeats, and run until idle again.

    ``every``: ledger.checkpoint_records (0: no checkpoints).
    """
    path = write_config(directory, items=1, commit_records=1, q=1,
                        segment_bytes=f"{256 << 20}\ncheckpoint_records = {every}\n"
                                      "checkpoints_kept = 1000")
    path.write_text(path.read_text() + "\n[input]\nmax_line_bytes = 256\n")
    daemon = Daemon(config.load(path), mode="run")
    lakehouse = directory / "lakehouse"
    async def driver() -> None:
        while True:
            await anyio.sleep(0.01)
            busy = any(any((lakehouse / d).iterdir()) for d in ("inbox", "work")
                       if (lakehouse / d).exists())
            if busy:
                continue
            if deliver:
                for name in deliver:
                    temp = lakehouse / "inbox" / f".{name}"
                    temp.write_bytes(REPEATS[name])
                    temp.rename(lakehouse / "inbox" / name)
                deliver.clear()
                continue
            daemon.stopping.set()
            return

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(driver)
            await daemon.run()


def check(directory: Path) -> None:
    ledger = directory / "ledger"
    assert scan(ledger).torn is None
    per_source: Counter[tuple[str, int]] = Counter()
    filled: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    for record in records(ledger):
        body = record["body"]
        if record["kind"] in ("tick", "outcome"):
            per_source[(body["source"][0], body["source"][1])] += 1
        if record["kind"] == "outcome" and body["status"] == "FILLED":
            filled[body["intent_id"]] += 1
        if record["kind"] == "outcome" and body.get("reason") == reasons.INPUT_FILE_REPEATED:
            refused[body["source"][0]] += 1
    for name, data in FILES.items():
        numbered = [n + 1 for n, text in enumerate(data.split(b"\n")) if text.strip()]
        for number in numbered:
            assert per_source[(name, number)] == 1, (name, number, per_source)
        if not numbered:
            assert sum(c for (f, _), c in per_source.items() if f == name) == 1, name
    assert max(filled.values()) == 1
    assert refused == {f"{name}.repeat-1": 1 for name in REPEATS}, refused
    lakehouse = directory / "lakehouse"
    for name, data in FILES.items():
        assert (lakehouse / "archive" / name).read_bytes() == data
    for name, data in REPEATS.items():
        assert (lakehouse / "rejected" / f"{name}.repeat-1").read_bytes() == data
    assert not any((lakehouse / "inbox").iterdir()) and not any((lakehouse / "work").iterdir())


def crash_states(full: list[bytes], k: int) -> list[dict[str, str]]:
    """Where each file can be after a crash that kept the first ``k`` records."""
    kept = [json.loads(x) for x in full[:k]]
    finished = {r["body"]["file"]: r["body"]["disposition"] for r in kept
                if r["kind"] == "input_file"}
    started = {r["body"]["source"][0] for r in kept if r["kind"] in ("outcome", "tick")}
    names = [*FILES, *(f"{n}.repeat-1" for n in REPEATS)]
    base: dict[str, str] = {}
    for name in names:
        original = name.removesuffix(".repeat-1")
        if name != original and finished.get(original) != "archive":
            base[name] = "absent"  # not delivered yet
        elif name in finished:
            base[name] = "moved"
        elif name in started:
            base[name] = "work"
        else:
            base[name] = "inbox"
    states = [base]
    for name, where in base.items():
        if where == "moved":
            states.append({**base, name: "work"})  # died before the move
    waiting = [n for n in names if base[n] == "inbox"]
    if waiting:
        states.append({**base, waiting[0]: "work"})  # died right after claiming
    return states


def place(lakehouse: Path, states: dict[str, str]) -> None:
    for sub in ("inbox", "work", "archive", "rejected"):
        (lakehouse / sub).mkdir(parents=True, exist_ok=True)
    for name, where in states.items():
        original = name.removesuffix(".repeat-1")
        data = REPEATS[original] if name != original else FILES[name]
        if where == "absent":
            continue
        if where == "inbox":
            (lakehouse / "inbox" / original).write_bytes(data)
        elif where == "work":
            (lakehouse / "work" / name).write_bytes(data)
        else:
            target = "archive" if name == original else "rejected"
            (lakehouse / target / name).write_bytes(data)


def same_state_as_full_fold(directory: Path, checkpoints: Path) -> str | None:
    """Recovery from the checkpoints of a whole run (``checkpoints``: later ones included,
    which this cut ledger never recorded) gives what the full fold gives; the snapshot
    it started from."""
    cfg = config.load(directory / "execd.toml").config
    full = recover(directory / "ledger", repair=False, risk=Risk(cfg), fold_key=fold_key(cfg))
    assert full.checkpoint is None
    shutil.copytree(checkpoints, directory / "ledger" / "checkpoints")
    fast = recover(directory / "ledger", repair=False, risk=Risk(cfg), fold_key=fold_key(cfg))
    full.close_index()
    fast.close_index()
    assert full.unheld is not None and fast.unheld is not None
    assert encode_snapshot(fast.unheld) == encode_snapshot(full.unheld)
    return fast.checkpoint


@pytest.mark.parametrize("every", [0, 3])
async def test_every_crash_point_recovers_to_one_outcome_per_line(
        tmp_path: Path, every: int) -> None:
    """A crash at any record boundary, whatever state it leaves the lakehouse in, never makes the
    restart give an input line zero or two outcomes; with checkpoints on (every 3 records),
    a crash right before or right after a checkpoint record is durable recovers what the
    full fold does, from the checkpoint once its record is in the chain.
    """
    base = tmp_path / "base"
    inbox = base / "lakehouse" / "inbox"
    inbox.mkdir(parents=True)
    for name, data in FILES.items():
        (inbox / name).write_bytes(data)
    await run_until_idle(base, list(REPEATS), every)
    snapshots = tmp_path / "snapshots"
    if every:
        shutil.copytree(base / "ledger" / "checkpoints", snapshots)
    check(base)
    full = [x + b"\n" for x in (base / "ledger" / "segment-00000001.jsonl").read_bytes()
            .splitlines()]
    kinds = [json.loads(x)["kind"] for x in full]
    tried = 0
    used_checkpoints = set()
    for k in range(1, len(full)):
        for index, states in enumerate(crash_states(full, k)):
            directory = tmp_path / f"k{k}-{index}"
            (directory / "ledger").mkdir(parents=True)
            (directory / "ledger" / "segment-00000001.jsonl").write_bytes(b"".join(full[:k]))
            place(directory / "lakehouse", states)
            owed = [n for n in REPEATS if states[f"{n}.repeat-1"] == "absent"]
            if every and index == 0:
                write_config(directory)
                used = same_state_as_full_fold(directory, snapshots)
                recorded = [x for x in range(every, k, every) if kinds[x] == "checkpoint"]
                assert used == (checkpoints.name(recorded[-1]) if recorded else None), k
                used_checkpoints.add(used)
            await run_until_idle(directory, owed, every)
            try:
                check(directory)
            except AssertionError as failure:
                raise AssertionError(f"crash after record {k}, files {states}") from failure
            shutil.rmtree(directory)
            tried += 1
    assert tried > len(full)
    assert not every or len(used_checkpoints) > 5, used_checkpoints
