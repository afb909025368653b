"""The positions index as the daemon writes it: at each checkpoint of a replay, with
segments rotated, runs compacted and old segments archived, ``tail --intent`` prints the
same bytes with it as without it, and an index made again from the ledger is the one the
daemon wrote."""

from __future__ import annotations

import gzip
import io
import shutil
import uuid
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from execd.app.position_runs import PositionRuns
from execd.cli.main import main
from execd.cli.tail import check_filters, tail
from execd.ledger import checkpoints
from execd.ledger.index import positions
from execd.ledger.index.positions import Found, View
from execd.ledger.index.runs import BODY
from execd.ledger.index.store import DIRECTORY
from execd.ledger.segments import list_segments
from execd.service import logs
from tests.helpers import intent, lines, replay


def _ids(count: int) -> list[str]:
    return [str(uuid.UUID(int=(n * 0x9E3779B97F4A7C15F39CC0605CEDC835) % (1 << 128)))
            for n in range(1, count + 1)]


async def _replayed(directory: Path, ids: list[str]) -> Path:
    """A paper replay of every intent twice over (the second a duplicate: a refusal of the
    same id), in 4 KiB segments with a checkpoint every 10 records."""
    inbox = directory / "in.jsonl"
    inbox.write_bytes(lines({"kind": "tick", "time": 1},
                            *(intent(n, intent_id=i) for n, i in enumerate(ids)),
                            *(intent(n, intent_id=i) for n, i in enumerate(ids[:20]))))
    return await replay(directory, [inbox], segment_bytes="4096\ncheckpoint_records = 10\n"
                        "checkpoints_kept = 3")


def _shown(ledger: Path, prefix: str, last: int = 0) -> tuple[bytes, str]:
    out, err = io.BytesIO(), io.StringIO()
    tail(ledger, out, last=last, follow=False, as_json=False,
         filters=check_filters("", "", "", prefix), err=err)
    return out.getvalue(), err.getvalue()


def _whole(ledger: Path, prefix: str, last: int = 0) -> bytes:
    where = ledger / DIRECTORY / positions.DIRECTORY
    shutil.move(where, ledger.parent / "aside")
    try:
        out, err = _shown(ledger, prefix, last)
    finally:
        shutil.move(ledger.parent / "aside", where)
    assert "positions index not used" in err
    return out


def _every(ledger: Path) -> tuple[int, list[Found]]:
    view = View.open(ledger / DIRECTORY / positions.DIRECTORY)
    try:
        return view.manifest.through_seq, view.between(0, 1 << 128)
    finally:
        view.close()


async def test_the_daemon_s_index_gives_the_same_bytes_before_and_after_archiving(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ids = _ids(120)
    ledger = await _replayed(tmp_path, ids)
    newest = checkpoints.through_of(checkpoints.listed(ledger)[0].name)
    through, every = _every(ledger)
    assert through == newest and len(list_segments(ledger)) > 10
    view = View.open(ledger / DIRECTORY / positions.DIRECTORY)
    assert len(view.manifest.runs) < through // 10  # compactions merged runs
    view.close()
    # Each intent has its outcome, and the first twenty a refusal as a duplicate too.
    assert {str(uuid.UUID(int=item.intent)) for item in every} >= set(ids[:100])
    prefixes = [ids[3], ids[15], ids[110], ids[40][:1], ids[41][:9], ids[42][:19], "f"]
    for prefix in prefixes:
        for last in (0, 2):
            found, err = _shown(ledger, prefix, last)
            assert err == "" and found == _whole(ledger, prefix, last), prefix
            assert prefix.encode() in found or last
    assert main(["ledger", "archive", "--ledger", str(ledger)]) == 0
    capsys.readouterr()
    moved = [p for p in (ledger / "archive").glob("*.gz")]
    assert len(moved) > 3
    archived_ids = [i for i in ids if i.encode() in b"".join(
        gzip.decompress(p.read_bytes()) for p in moved)]
    assert archived_ids
    for prefix in (*prefixes, archived_ids[0]):
        found, err = _shown(ledger, prefix)
        assert found == _whole(ledger, prefix), prefix
        if prefix == archived_ids[0]:
            assert "in archived segments, not read" in err, err


async def test_an_index_made_again_from_the_ledger_is_the_daemon_s(tmp_path: Path) -> None:
    """Removed, the index is made again by the next checkpoint's catch-up, from the
    ledger alone: the same records at the same places."""
    ledger = await _replayed(tmp_path, _ids(60))
    live = _every(ledger)
    where = ledger / DIRECTORY / positions.DIRECTORY
    shutil.rmtree(where)
    writer = PositionRuns(ledger, logs.get("ledger"))
    listed = checkpoints.listed(ledger)[0].name
    through = checkpoints.through_of(listed)
    assert through is not None
    # The checkpoint's target, as the checkpointer gives it: read from the ledger here.
    offset, last_hash = 0, ""
    for path in list_segments(ledger):
        for line in path.read_bytes().splitlines(keepends=True):
            named = positions.read_line(line.rstrip(b"\n"))
            assert named is not None
            offset += len(line)
            if named.seq == through:
                last_hash = named.hash
                break
        else:
            continue
        break
    writer.due(through, offset, last_hash)
    writer.wait()
    writer.close()
    assert _every(ledger) == live
    view = View.open(where)
    span = view.manifest.span
    view.close()
    assert span is not None and span.end == offset



def _targets(ledger: Path, seqs: list[int]) -> list[tuple[int, int, str]]:
    """(seq, end offset, hash) of each record of ``seqs``, as the checkpointer names them."""
    found, offset = [], 0
    for path in list_segments(ledger):
        for line in path.read_bytes().splitlines(keepends=True):
            named = positions.read_line(line.rstrip(b"\n"))
            assert named is not None
            offset += len(line)
            if named.seq in seqs:
                found.append((named.seq, offset, named.hash))
    return found


async def test_a_damaged_run_met_by_a_merge_is_read_again_from_the_ledger(
        tmp_path: Path) -> None:
    """A positions run's block damaged after it was written: the compaction that reads
    it meets RunDamaged, and the index is made again from the ledger (tail checks every
    record it is pointed at, so it never showed a wrong one; but every later merge would
    fail on it): the same records at the same places in the end."""
    ledger = await _replayed(tmp_path, _ids(60))
    live = _every(ledger)
    where = ledger / DIRECTORY / positions.DIRECTORY
    shutil.rmtree(where)
    writer = PositionRuns(ledger, logs.get("ledger"))
    targets = _targets(ledger, [20, 40, 60, 80, 100, live[0]])
    with capture_logs() as logged:
        for n, target in enumerate(targets):
            writer.due(*target)
            writer.wait()
            if n == 0:
                [run] = where.glob("run-*.ids")
                data = bytearray(run.read_bytes())
                data[BODY + 5] ^= 0x20
                run.write_bytes(bytes(data))
    writer.close()
    rebuilt = [e for e in logged if e["event"] == "index.positions_rebuilt"]
    assert len(rebuilt) == 1 and run.name in rebuilt[0]["reason"], logged
    assert _every(ledger) == live
