"""What a daemon that has run for months keeps beside its ledger, made by the daemon.

A built ledger (``bench/scale_ledger.py``) holds records only. A daemon that takes
checkpoints (``ledger.checkpoint_records``, issue 15) has snapshots and an id index
beside them, which start-up, ``verify --from-checkpoint`` and ``tail --intent`` use.
Rather than write them in a format this bench would have to follow, the tree under
test makes its own: ``execd run`` over a copy of the built ledger, fed one inbox file
of twice ``checkpoint_records`` + 100 intents (so its chain passes two multiples of
``checkpoint_records`` and it takes a checkpoint at each), stopped with SIGTERM once
the head witness shows them durable. Two, because the first checkpoint after a
history without one writes the id run of every id so far (about a minute at 10M ids),
past ``ledger.checkpoint_timeout_ms``: its snapshot is skipped, as in a daemon first
run with checkpoints over a long ledger, and the next one is written. Each tree's
primed ledger is kept beside the built one, named by a digest of the tree's
``execd/`` sources. A tree without the key has nothing to prime: it is measured on
the built ledger itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import scale_ledger

FIRST_ID = 1 << 44  # the prime's intent ids: far above any built ledger's
DURABLE_TIMEOUT_S = 3600.0  # a 10M-record full fold on a loaded 2-core machine: over 10 min


def source_digest(root: Path) -> str:
    """A digest of the ``execd`` package of the tree at ``root``."""
    digest = hashlib.sha256()
    for path in sorted((root / "execd").rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def checkpoint_records(root: Path, config: Path) -> int:
    """The tree's ``ledger.checkpoint_records`` under ``config`` (0: it has none)."""
    shown = subprocess.run([sys.executable, "-m", "execd", "config", "show", "--format", "json",
                            "--config", str(config)], cwd=root, check=True,
                           capture_output=True, text=True, env={**os.environ,
                                                                "PYTHONPATH": str(root)})
    ledger: dict[str, Any] = json.loads(shown.stdout).get("ledger", {})
    return int(ledger.get("checkpoint_records") or 0)


def write_inbox(inbox: Path, count: int) -> None:
    """One file of ``count`` intents, renamed into ``inbox`` as producers must."""
    inbox.mkdir(parents=True, exist_ok=True)
    temp = inbox / ".prime.tmp"
    with open(temp, "wb") as handle:
        for n in range(FIRST_ID, FIRST_ID + count):
            venue, side, q = scale_ledger._intent(n)
            handle.write(scale_ledger.LINE % (n, venue, side, q) + b"\n")
    os.replace(temp, inbox / "prime.jsonl")


def _archived(lakehouse: Path) -> bool:
    return any((lakehouse / "archive").rglob("*prime*"))


def _positions_behind(root: Path, ledger: Path) -> bool:
    """True while the tree at ``root`` writes a positions index (app/position_runs.py)
    that does not yet cover its newest checkpoint: it catches up in a thread of its own
    after the checkpoint, over the whole built history the first time."""
    if not (root / "execd" / "app" / "position_runs.py").exists():
        return False
    snapshots = sorted((ledger / "checkpoints").glob("snapshot-*.msgpack"))
    if not snapshots:
        return False  # no checkpoint yet (its snapshot comes before the file is archived)
    newest = int(snapshots[-1].name.removeprefix("snapshot-").split(".")[0])
    try:
        manifest = json.loads((ledger / "index" / "positions" / "MANIFEST.json").read_text())
    except (OSError, ValueError):
        return True
    return int(manifest["manifest"]["through_seq"]) < newest


def run_until_archived(root: Path, config: Path, lakehouse: Path, work: Path) -> None:
    """``execd run`` until the inbox file is archived (its records durable) and the
    positions index covers the checkpoint, then SIGTERM; RuntimeError if it ends first,
    fails or takes longer than DURABLE_TIMEOUT_S."""
    env = {**os.environ, "PYTHONPATH": str(root), "NOTIFY_SOCKET": str(work / "notify.sock")}
    with (socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify,
          open(work / "prime.log", "wb") as log):
        notify.bind(str(work / "notify.sock"))  # a systemd would: READY and WATCHDOG land here
        child = subprocess.Popen([sys.executable, "-m", "execd", "run", "--config", str(config),
                                  "--log-format", "json"], cwd=root, env=env, stdout=log,
                                 stderr=subprocess.STDOUT)
        began = time.monotonic()
        while (not _archived(lakehouse) or _positions_behind(root, work / "ledger")) \
                and child.poll() is None:
            if time.monotonic() - began > DURABLE_TIMEOUT_S:
                child.kill()
                break
            time.sleep(0.5)
        child.send_signal(signal.SIGTERM)
        code = child.wait()
    if code != 0 or not _archived(lakehouse):
        raise RuntimeError(f"priming failed (exit {code}, the file archived: "
                           f"{_archived(lakehouse)}):\n"
                           + (work / "prime.log").read_text()[-3000:])


def prime(root: Path, built: Path, make_config: Any,
          fresh_ledger: Any) -> Path:
    """The ledger directory to measure the tree at ``root`` on: ``built/ledger`` when the
    tree takes no checkpoints, else its primed copy (made now if missing)."""
    target = built / f"primed-{source_digest(root)}"
    if (target / "primed.json").exists():
        return target / "ledger"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    ledger = target / "ledger"
    config = make_config(target, ledger)
    every = checkpoint_records(root, config)
    if every <= 0:
        shutil.rmtree(target)
        return built / "ledger"
    print(f"    priming {built.name} for {root}: {2 * every + 100:,} intents, "
          f"ledger.checkpoint_records {every:,}", flush=True)
    fresh_ledger(built / "ledger", ledger)
    count = 2 * every + 100
    write_inbox(target / "lakehouse" / "inbox", count)
    run_until_archived(root, config, target / "lakehouse", target)
    (target / "primed.json").write_text(json.dumps({"checkpoint_records": every,
                                                    "intents": count}) + "\n")
    return ledger
