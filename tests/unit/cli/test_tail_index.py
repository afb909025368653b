"""``execd ledger tail --intent`` through the positions index: the same bytes as reading
the whole ledger, and the whole ledger read (with a note) whenever the index cannot be
trusted. The index here is written by the daemon's own writer (app/position_runs.py)
over ledgers chained as the writer chains them."""

from __future__ import annotations

import io
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
import pytest
from structlog.testing import capture_logs

from execd.app.position_runs import PositionRuns
from execd.cli.main import main
from execd.cli.tail import check_filters, tail
from execd.ledger.index import positions
from execd.ledger.index.positions import View, entry
from execd.ledger.index.store import DIRECTORY, MANIFEST, IndexStore
from execd.ledger.record import LedgerChain
from execd.ledger.segments import SegmentStore, list_segments
from execd.service import logs

WALL = 1_767_225_600_000_000_000  # a wall-clock time, in nanoseconds since the epoch


def intent_ids(count: int) -> list[str]:
    """Ids spread over the whole id space, the nil id among them (the index keys start
    records under id 0 too: a record of intent 0 must still be told from a start)."""
    spread = [str(uuid.UUID(int=(n * 0x9E3779B97F4A7C15F39CC0605CEDC835) % (1 << 128)))
              for n in range(1, count)]
    return [str(uuid.UUID(int=0)), *spread]


def _body(**fields: Any) -> bytes:
    return msgspec.json.encode(fields)


def records(ids: list[str]) -> list[tuple[str, int, bytes]]:
    """Two runs of the daemon (a wall-clock one, then a logical one) whose records name
    the intents several times each, with ticks and context between them."""
    out: list[tuple[str, int, bytes]] = [
        ("start", WALL, _body(mode="run", clock="wall", planes={"paper": "paper"}))]
    for n in range(160):
        if n == 90:
            out.append(("stop", WALL + n, _body(reason="signal")))
            out.append(("start", 5, _body(mode="run", clock="logical", planes={})))
        intent_id = ids[(n * 7) % len(ids)]
        at = WALL + n if n < 90 else n
        if n % 10 == 0:
            out.append(("tick", at, _body(time=at)))
        if n % 3 == 0:
            out.append(("order", at, _body(intent_id=intent_id, venue="paper", symbol="X",
                                           wall_time=WALL + n)))
        out.append(("outcome", at, _body(intent_id=intent_id, status="FILLED", venue="paper",
                                         symbol="X", side="buy", wall_time=WALL + n)))
        if n % 17 == 0:
            out.append(("override", at, _body(intent_id=intent_id, regime="calm",
                                              operator="ops", reason="test")))
    return out


class Checkpoint(NamedTuple):
    seq: int
    end: int
    head_hash: str


def build(directory: Path, every: list[tuple[str, int, bytes]], batch: int = 40,
          segment_bytes: int = 4096) -> list[Checkpoint]:
    """The ledger of ``every`` record, written ``batch`` at a time into segments of
    ``segment_bytes``; where each batch ends (the checkpoints the index catches up to)."""
    store = SegmentStore(directory, segment_bytes)
    store.open()
    chain = LedgerChain()
    ends, written = [], 0
    for first in range(0, len(every), batch):
        data = b"".join(chain.append(kind, at, body)
                        for kind, at, body in every[first:first + batch])
        store.write_durably(data)
        written += len(data)
        ends.append(Checkpoint(chain.next_seq - 1, written, chain.prev_hash))
    store.close()
    return ends


def index(ledger: Path, upto: list[Checkpoint]) -> None:
    """The positions index the daemon writes at each of ``upto``."""
    writer = PositionRuns(ledger, logs.get("ledger"))
    for point in upto:
        writer.due(*point)
        writer.wait()
    writer.close()


def shown(ledger: Path, prefix: str, last: int = 0, as_json: bool = False) -> tuple[bytes, str]:
    """What tail prints on stdout and stderr for ``--intent prefix -n last``."""
    out, err = io.BytesIO(), io.StringIO()
    tail(ledger, out, last=last, follow=False, as_json=as_json,
         filters=check_filters("", "", "", prefix), err=err)
    return out.getvalue(), err.getvalue()


@contextmanager
def without_index(ledger: Path) -> Iterator[None]:
    where = ledger / DIRECTORY / positions.DIRECTORY
    aside = ledger.parent / "aside"
    shutil.move(where, aside)
    try:
        yield
    finally:
        shutil.move(aside, where)


def whole(ledger: Path, prefix: str, last: int = 0, as_json: bool = False) -> bytes:
    with without_index(ledger):
        out, err = shown(ledger, prefix, last, as_json)
    assert "positions index not used" in err and "no index" in err
    return out


@pytest.fixture
def ledger(tmp_path: Path) -> tuple[Path, list[str], list[Checkpoint]]:
    ids = intent_ids(40)
    directory = tmp_path / "ledger"
    points = build(directory, records(ids))
    assert len(list_segments(directory)) > 5 and len(points) > 6
    return directory, ids, points


def prefixes(ids: list[str]) -> list[str]:
    return [ids[3], ids[0], ids[5][:1], ids[9][:8], ids[9][:9], ids[11][:14], ids[12][:20],
            ids[13][:30], "0", "00000000-0000-0000-0000-00000000000", "ffffffff-ffff-f",
            "0123-", "4"]


def test_tail_through_the_index_prints_the_same_bytes(
        ledger: tuple[Path, list[str], list[Checkpoint]]) -> None:
    """Over several checkpoints (runs merged by compaction, segments rotated, both clocks),
    for ids of every shape of prefix, with -n and --json: the index changes nothing but
    how much is read; and so with an index behind the ledger (tail reads the rest)."""
    directory, ids, points = ledger
    for covered in (points[:-1], points[:3]):
        shutil.rmtree(directory / DIRECTORY, ignore_errors=True)
        index(directory, covered)
        view = View.open(directory / DIRECTORY / positions.DIRECTORY)
        assert view.manifest.through_seq == covered[-1].seq
        if len(covered) > 4:
            assert len(view.manifest.runs) < len(covered)  # a compaction merged runs
        view.close()
        for prefix in prefixes(ids):
            for last, as_json in ((0, False), (1, False), (3, False), (0, True), (2, True)):
                found, err = shown(directory, prefix, last, as_json)
                assert err == ""
                assert found == whole(directory, prefix, last, as_json), (prefix, last)
    # Times shown as wall-clock ones in the first run and logical ones in the second.
    found, _ = shown(directory, ids[3])
    assert b"t=2026-01-01T00:00:00" in found and b" t=1" in found.replace(b"t=12", b"t=1")


def test_the_covered_prefix_is_read_through_the_index_not_scanned(
        ledger: tuple[Path, list[str], list[Checkpoint]]) -> None:
    """A line the index names no intent for is not read at all: made unreadable after the
    index was written, the whole-ledger read shows it and the indexed one does not (the
    covered prefix was whole when the daemon indexed it; an edit is verify's to find)."""
    directory, ids, points = ledger
    index(directory, points)
    segment = list_segments(directory)[1]
    data = segment.read_bytes()
    tick = data.index(b'"kind":"tick"')
    start = data.rindex(b"\n", 0, tick) + 1
    end = data.index(b"\n", tick)
    segment.write_bytes(data[:start] + b"x" * (end - start) + data[end:])
    found, err = shown(directory, ids[3])
    assert err == "" and b"unreadable line" not in found
    assert b"unreadable line" in whole(directory, ids[3])


def _corrupt_manifest(where: Path) -> None:
    data = (where / MANIFEST).read_bytes()
    (where / MANIFEST).write_bytes(data.replace(b'"count":', b'"count":1', 1))


def _corrupt_header(where: Path) -> None:
    run = sorted(where.glob("run-*.ids"))[0]
    data = bytearray(run.read_bytes())
    data[0] ^= 0xFF
    run.write_bytes(bytes(data))


def _truncate_run(where: Path) -> None:
    run = sorted(where.glob("run-*.ids"))[0]
    run.write_bytes(run.read_bytes()[:-8])


@pytest.mark.parametrize(("damage", "said"), [
    (_corrupt_manifest, "its SHA-256 does not match"),
    (_corrupt_header, "not a version-3 run header"),
    (_truncate_run, "not what its header says"),
])
def test_a_damaged_index_is_not_used_and_tail_says_so(
        ledger: tuple[Path, list[str], list[Checkpoint]], damage: Any, said: str) -> None:
    directory, ids, points = ledger
    index(directory, points)
    damage(directory / DIRECTORY / positions.DIRECTORY)
    for prefix in (ids[3], ids[5][:2]):
        found, err = shown(directory, prefix)
        assert "positions index not used" in err and said in err, err
        assert "reading the whole ledger" in err
        assert found == whole(directory, prefix)


def test_an_index_of_another_ledger_is_not_used(
        ledger: tuple[Path, list[str], list[Checkpoint]], tmp_path: Path) -> None:
    """An index copied from another ledger (or a ledger restored under a newer index):
    its last record is not where it says, with its hash."""
    directory, ids, points = ledger
    other = tmp_path / "other"
    index(other, build(other, records(intent_ids(41))))
    shutil.copytree(other / DIRECTORY, directory / DIRECTORY)
    found, err = shown(directory, ids[3])
    assert "positions index not used" in err and "as it says" in err, err
    assert found == whole(directory, ids[3])
    # The daemon's writer says the same, and makes it again from this ledger.
    with capture_logs() as logged:
        index(directory, points)
    assert [e["event"] for e in logged if e["log_level"] == "warning"] == \
        ["index.positions_rebuilt"]
    found, err = shown(directory, ids[3])
    assert err == "" and found == whole(directory, ids[3])


def test_a_record_that_is_not_the_one_named_ends_the_index_s_part(
        ledger: tuple[Path, list[str], list[Checkpoint]]) -> None:
    """One entry pointing at another record: what was shown stands, tail says so, and reads
    on linearly from there; the output is still the whole ledger's."""
    directory, ids, points = ledger
    index(directory, points)
    where = directory / DIRECTORY / positions.DIRECTORY
    view = View.open(where)
    every, span = view.between(0, 1 << 128), view.manifest.span
    view.close()
    mine = [item for item in every if str(uuid.UUID(int=item.intent)) == ids[3]]
    wrong = mine[len(mine) // 2]
    other = next(item for item in every if item.intent != wrong.intent)
    shutil.rmtree(where)
    store = IndexStore.create(where)
    store.write_run(sorted(entry(item.intent, item.seq,
                                 other.offset if item == wrong else item.offset)
                           for item in every), points[-1].seq, positions.VALUE, span=span)
    store.close()
    found, err = shown(directory, ids[3])
    assert f"is not record {wrong.seq} as the positions index says" in err, err
    assert "reading on without it" in err
    assert found == whole(directory, ids[3])


def test_the_command_reads_through_the_index(
        ledger: tuple[Path, list[str], list[Checkpoint]],
        capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    """Through ``execd ledger tail`` itself: stdout as without the index, nothing on stderr."""
    directory, ids, points = ledger
    index(directory, points[:4])
    capsysbinary.readouterr()  # the writer's log lines
    for args in (["--intent", ids[3].upper()], ["--intent", ids[3][:4], "--kind", "order"],
                 ["--intent", ids[7][:2], "-n", "2", "--json"]):
        assert main(["ledger", "tail", "--ledger", str(directory), *args]) == 0
        with_index = capsysbinary.readouterr()
        assert with_index.err == b""
        with without_index(directory):
            assert main(["ledger", "tail", "--ledger", str(directory), *args]) == 0
        assert capsysbinary.readouterr().out == with_index.out
