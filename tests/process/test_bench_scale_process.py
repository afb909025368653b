"""``make bench-scale`` runs ``execd run`` over copies of its cached ledgers: the runs
append to their copy only, and the cache stays the ledger that was built.

The older segments of a copy are hard links into the cache (a 10M-record ledger is
8 GB), so a daemon writing anything but the newest segment would change every later
measurement. Here a small built ledger of several segments is primed the way
``bench/scale_prime.py`` primes a tree that takes checkpoints (an inbox file, then
SIGTERM once it is archived) and started the way the start-up measure starts it.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import msgspec

from execd.config import schema as config

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import scale
import scale_ledger
import scale_prime


def _digests(ledger: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in ledger.iterdir()}


def _verify(path: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "execd", "ledger", "verify", "--config",
                           str(path)], cwd=scale.ROOT, capture_output=True, text=True, check=True)
    return done.stdout


def test_primed_and_started_copies_leave_the_cached_ledger_as_built(tmp_path: Path) -> None:
    loaded = config.load(scale._config(tmp_path, tmp_path / "unused")).config
    small = msgspec.structs.replace(
        loaded, ledger=msgspec.structs.replace(loaded.ledger, segment_bytes=1 << 20))
    built = scale_ledger.build(tmp_path / "cache", 20_000, small)
    before = _digests(built / "ledger")
    assert len([name for name in before if name.startswith("segment-")]) > 1

    primed = tmp_path / "primed"
    primed.mkdir()
    path = scale._config(primed, primed / "ledger")
    scale._fresh_ledger(built / "ledger", primed / "ledger")
    scale_prime.write_inbox(primed / "lakehouse" / "inbox", 500)
    scale_prime.run_until_archived(scale.ROOT, path, primed / "lakehouse", primed)
    # The built records, a start, the file's context, 500 outcomes, its input_file, a stop.
    assert "ok: 20504 records" in _verify(path)

    work = tmp_path / "run"
    work.mkdir()
    measured = scale.startup(scale.Tree("this tree", scale.ROOT), primed / "ledger", work)
    assert measured.seconds > 0 and measured.mb > 0
    assert "ok: 20506 records" in _verify(work / "execd.toml")  # its own start and stop

    assert _digests(built / "ledger") == before
    assert "ok: 20000 records" in _verify(scale._config(tmp_path / "again", built / "ledger"))
