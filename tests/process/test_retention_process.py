"""Archive and restore with real processes: SIGKILLs inside ``execd ledger archive``, and a
backup restored onto a fresh directory (README, "Backup and restore").

Never: a record in neither the ledger nor a complete archive file after a kill; a restored
daemon that runs an intent a second time or starts from other positions.
"""

from __future__ import annotations

import gzip
import json
import random
import shutil
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from execd.config import schema as config
from execd.ledger import retention
from execd.ledger.recovery import recover
from execd.ledger.segments import list_segments
from execd.ledger.snapshot import encode_snapshot, fold_key
from execd.model import reasons
from execd.sentinel.risk import Risk
from tests.helpers import (
    EXECD,
    ROOT,
    count_outcomes,
    drop,
    intent,
    ledger_bytes,
    lines,
    outcomes,
    start_daemon,
    stop,
    verify,
    wait_for,
    write_config,
)

OPTIONS = f"{4096}\ncheckpoint_records = 10\ncheckpoints_kept = 3"
KILL = ("import os, signal, sys; from pathlib import Path; from execd.ledger import retention; "
        "retention.archive(Path(sys.argv[1]), step=lambda s: s == sys.argv[2] and "
        "os.kill(os.getpid(), signal.SIGKILL))")


def execd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EXECD, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=120, check=False)


def run_until(config_path: Path, log: Path, inbox: Path, name: str, data: bytes,
              total: int) -> None:
    """Start ``execd run``, drop one input file, wait for ``total`` outcomes, stop."""
    ledger = Path(config.load(config_path).config.daemon.ledger_dir)
    process = start_daemon(config_path, log)
    try:
        drop(inbox, name, data)
        wait_for(lambda: count_outcomes(ledger) >= total or process.poll() is not None,
                 timeout=60)
    finally:
        assert stop(process) == 0, log.read_text()[-3000:]


def state(ledger: Path, cfg: config.Config) -> tuple[str | None, bytes]:
    """The checkpoint start-up folds from, and the state it reaches (before the holds)."""
    found = recover(ledger, repair=False, risk=Risk(cfg), fold_key=fold_key(cfg))
    assert found.unheld is not None
    return found.checkpoint, encode_snapshot(found.unheld)


def ran(tmp_path: Path) -> tuple[Path, Path]:
    """A paper daemon's ledger of many small segments with checkpoints; (config, ledger)."""
    path = write_config(tmp_path, segment_bytes=OPTIONS, level="info")
    run_until(path, tmp_path / "log", tmp_path / "lakehouse" / "inbox", "a.jsonl",
              lines({"kind": "tick", "time": 5}, *(intent(n) for n in range(60))), 60)
    return path, tmp_path / "ledger"


@pytest.mark.parametrize("seed", [1, 2])
def test_a_sigkill_inside_archive_loses_no_record(tmp_path: Path, seed: int) -> None:
    """At seeded durable steps (after a compressed file, each manifest, a removal), a
    SIGKILL leaves every segment in the ledger or complete in the archive, byte for byte;
    verify passes, and the next archive ends where an uninterrupted one does."""
    _, built = ran(tmp_path / "built")
    whole = {path.name: path.read_bytes() for path in list_segments(built)}
    clean = tmp_path / "clean"
    shutil.copytree(built, clean)
    assert execd("ledger", "archive", "--ledger", str(clean)).returncode == 0
    moved = [entry.name for entry in retention.read_manifest(clean / retention.ARCHIVED).segments]
    assert len(moved) >= 3
    steps = [f"{what} {name}" for name in moved
             for what in ("compressed", "manifest", "archived.json", "removed")]
    for point in random.Random(seed).sample(steps, 4):
        ledger = tmp_path / f"kill-{len(list(tmp_path.iterdir()))}"
        shutil.copytree(built, ledger)
        killed = subprocess.run([*EXECD[:1], "-c", KILL, str(ledger), point], cwd=ROOT,
                                capture_output=True, timeout=120, check=False)
        assert killed.returncode == -signal.SIGKILL, (point, killed.stderr)
        found = {path.name: path.read_bytes() for path in list_segments(ledger)}
        for packed in (ledger / "archive").glob("*.gz"):
            found.setdefault(packed.name.removesuffix(".gz"), gzip.decompress(
                packed.read_bytes()))
        assert found == whole, point
        verify(ledger)
        assert execd("ledger", "archive", "--ledger", str(ledger)).returncode == 0, point
        assert ledger_bytes(ledger) == ledger_bytes(clean)
        for name in ("archive/manifest.json", retention.ARCHIVED, *(
                f"archive/{name}.gz" for name in moved)):
            assert (ledger / name).read_bytes() == (clean / name).read_bytes(), (point, name)
        verify(ledger)


def test_a_backup_restored_onto_a_fresh_directory_resumes(tmp_path: Path) -> None:
    """The documented files (lakehouse, then head.json, checkpoints/, index/, archive/,
    archived.json and the segments) copied to a fresh machine directory: the daemon there
    starts from a checkpoint with the same state, runs only new intents, and refuses the
    old ids again."""
    old = tmp_path / "old"
    _, ledger = ran(old)
    assert execd("ledger", "archive", "--ledger", str(ledger)).returncode == 0
    assert (ledger / "archive" / "manifest.json").exists()
    new = tmp_path / "new"
    shutil.copytree(old / "lakehouse", new / "lakehouse")
    (new / "ledger").mkdir(parents=True)
    for name in ("head.json", "checkpoints", "index", "archive", retention.ARCHIVED):
        source = ledger / name
        if source.is_dir():
            shutil.copytree(source, new / "ledger" / name)
        elif source.exists():
            shutil.copy2(source, new / "ledger" / name)
    for segment in list_segments(ledger):
        shutil.copy2(segment, new / "ledger" / segment.name)
    path = write_config(new, segment_bytes=OPTIONS, level="info")
    cfg = config.load(path).config
    assert state(new / "ledger", cfg) == state(ledger, config.load(old / "execd.toml").config)
    first = state(new / "ledger", cfg)[0]
    assert first is not None  # from a checkpoint, the archive unread
    data = lines({"kind": "tick", "time": 9}, *(intent(n) for n in range(50, 80)))
    # Outcomes are counted in the segments the ledger still holds (the rest are archived).
    before = count_outcomes(new / "ledger")
    run_until(path, new / "log", new / "lakehouse" / "inbox", "b.jsonl", data, before + 30)
    recovered = [line for line in (new / "log").read_text().splitlines()
                 if "ledger.recovered" in line]
    assert recovered and "snapshot-0" in recovered[0], recovered
    verify(new / "ledger")
    # The whole history: the archive unpacked beside the segments, in a scratch copy.
    whole = tmp_path / "whole"
    shutil.copytree(new / "ledger", whole)
    for packed in (whole / "archive").glob("*.gz"):
        (whole / packed.name.removesuffix(".gz")).write_bytes(gzip.decompress(
            packed.read_bytes()))
    (whole / retention.ARCHIVED).unlink()
    shutil.rmtree(whole / "checkpoints")
    done = outcomes(whole)
    filled = Counter(o["intent_id"] for o in done if o["status"] == "FILLED")
    assert len(filled) == 80 and max(filled.values()) == 1, "an intent ran twice"
    repeated = [o for o in done if o.get("reason") == reasons.INTENT_DUPLICATE]
    assert len(repeated) == 10
    # The positions a start from the checkpoint reaches are those of the whole history.
    used, after = state(new / "ledger", cfg)
    assert used is not None and used > first, "the restored run's own checkpoints count"
    assert state(whole, cfg)[1] == after
    assert json.loads((new / "ledger" / retention.ARCHIVED).read_text())["directory"] == "archive"
