"""Retention: ``execd ledger archive`` moves what a checkpoint covers, and nothing is lost.

Never: a record that is in neither the ledger nor a complete archive file; a start-up that
folds a ledger whose first segments were archived as if it were whole; an archive that
verify passes after one of its files changed.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from execd.cli.main import main
from execd.config import schema as config
from execd.ledger import checkpoints, retention
from execd.ledger.record import Record, record_decoder
from execd.ledger.recovery import recover
from execd.ledger.segments import exclusive, list_segments, segment_name
from execd.ledger.snapshot import encode_snapshot, fold_key
from execd.model.errors import LedgerArchived, LedgerCorrupt
from execd.sentinel.risk import Risk
from tests.helpers import intent, ledger_bytes, lines, replay


async def small_segments(directory: Path) -> tuple[Path, config.Config]:
    """A replayed paper ledger of many 4 KiB segments, a checkpoint every 10 records."""
    inbox = directory / "in.jsonl"  # directory: the test's tmp_path, already made
    inbox.write_bytes(lines({"kind": "tick", "time": 1}, *(intent(n) for n in range(120))))
    ledger = await replay(directory, [inbox],
                          segment_bytes=f"{4096}\ncheckpoint_records = 10\ncheckpoints_kept = 3")
    return ledger, config.load(directory / "execd.toml").config


def state_of(ledger: Path, cfg: config.Config) -> tuple[str | None, bytes]:
    """The checkpoint start-up folds from, and the state it reaches (before the holds)."""
    state = recover(ledger, repair=False, risk=Risk(cfg), fold_key=fold_key(cfg))
    assert state.unheld is not None
    return state.checkpoint, encode_snapshot(state.unheld)


def cli(capsys: pytest.CaptureFixture[str], ledger: Path, *args: str) -> tuple[int, str]:
    code = main(["ledger", *args, "--ledger", str(ledger),
                 "--config", str(ledger.parent / "execd.toml")])
    out = capsys.readouterr()
    return code, out.out + out.err


async def test_archive_moves_what_the_oldest_checkpoint_covers(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every segment wholly at or before the oldest kept checkpoint moves, gzip-compressed,
    and start-up from a checkpoint, verify and verify --from-checkpoint are unchanged."""
    ledger, cfg = await small_segments(tmp_path)
    whole = ledger_bytes(ledger)
    before = state_of(ledger, cfg)
    oldest = checkpoints.through_of(checkpoints.listed(ledger)[-1].name)
    assert oldest is not None
    segments = list_segments(ledger)
    code, said = cli(capsys, ledger, "archive")
    assert code == 0, said
    manifest = retention.read_manifest(ledger / "archive" / retention.MANIFEST)
    assert manifest == retention.read_manifest(ledger / retention.ARCHIVED)
    moved = [entry.name for entry in manifest.segments]
    assert moved == [path.name for path in segments[:len(moved)]] and len(moved) > 3
    assert all(entry.last_seq <= oldest for entry in manifest.segments)
    # The next segment holds a record past the checkpoint: it stays.
    assert manifest.segments[-1].last_seq + 1 <= oldest + 1
    assert [p.name for p in list_segments(ledger)] == [p.name for p in segments[len(moved):]]
    restored = b"".join(gzip.decompress((ledger / "archive" / f"{name}.gz").read_bytes())
                        for name in moved)
    assert restored + ledger_bytes(ledger) == whole
    assert manifest.segments[0].first_seq == 1
    assert state_of(ledger, cfg) == before
    code, said = cli(capsys, ledger, "verify")
    assert code == 0 and f"{len(moved)} archived segments included" in said, said
    code, said = cli(capsys, ledger, "verify", "--from-checkpoint")
    assert code == 0, said
    assert f"from checkpoint {checkpoints.listed(ledger)[0].name}" in said, said
    # Nothing more to move until a newer checkpoint is the oldest kept.
    code, said = cli(capsys, ledger, "archive")
    assert code == 0 and "nothing to archive" in said


async def test_a_full_fold_over_an_archived_ledger_is_refused(tmp_path: Path) -> None:
    """With every checkpoint unusable and segments archived, start-up refuses and says what
    to restore; once they are restored the full fold is the state the checkpoint gave."""
    ledger, cfg = await small_segments(tmp_path)
    _, state = state_of(ledger, cfg)
    assert main(["ledger", "archive", "--ledger", str(ledger)]) == 0
    shutil.move(ledger / checkpoints.DIRECTORY, tmp_path / "aside")
    with pytest.raises(LedgerArchived) as refused:
        recover(ledger, repair=False, risk=Risk(cfg), fold_key=fold_key(cfg))
    assert "no checkpoint is usable" in str(refused.value)
    assert "gunzip" in str(refused.value) and str(ledger / "archive") in str(refused.value)
    with pytest.raises(LedgerArchived):  # checkpoints off: always the full fold
        recover(ledger, repair=False, risk=Risk(cfg))
    for packed in (ledger / "archive").glob("*.gz"):
        (ledger / packed.name.removesuffix(".gz")).write_bytes(gzip.decompress(
            packed.read_bytes()))
    assert state_of(ledger, cfg) == (None, state)


async def test_archive_refuses_while_the_ledger_is_held(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """While another process (the daemon) holds the ledger's lock, nothing moves."""
    ledger, _ = await small_segments(tmp_path)
    whole = ledger_bytes(ledger)
    with exclusive(ledger):
        code, said = cli(capsys, ledger, "archive")
    assert code == 1 and "archive only while the daemon is stopped" in said, said
    assert ledger_bytes(ledger) == whole and not (ledger / "archive").exists()


async def test_nothing_moves_without_a_checkpoint(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger, _ = await small_segments(tmp_path)
    shutil.rmtree(ledger / checkpoints.DIRECTORY)
    whole = ledger_bytes(ledger)
    code, said = cli(capsys, ledger, "archive")
    assert code == 0 and "nothing to archive" in said
    assert ledger_bytes(ledger) == whole


@pytest.mark.parametrize("damage", ["edit", "drop", "manifest"])
async def test_verify_fails_on_a_changed_archive(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str) -> None:
    """A compressed file changed (even to another valid gzip), removed, or a manifest entry
    edited: plain verify fails; --from-checkpoint, which does not read the archive, passes."""
    ledger, _ = await small_segments(tmp_path)
    assert main(["ledger", "archive", "--ledger", str(ledger)]) == 0
    first = ledger / "archive" / "segment-00000002.jsonl.gz"
    if damage == "edit":
        data = gzip.decompress(first.read_bytes()).replace(b'"0.5"', b'"0.6"', 1)
        first.write_bytes(gzip.compress(data))
    elif damage == "drop":
        first.unlink()
    else:
        raw = json.loads((ledger / retention.ARCHIVED).read_text())
        raw["segments"][1]["gz_sha256"] = "0" * 64
        (ledger / retention.ARCHIVED).write_text(json.dumps(raw))
    code, said = cli(capsys, ledger, "verify")
    assert code == 1 and "FAILED" in said and "segment-00000002" in said, said
    code, said = cli(capsys, ledger, "verify", "--from-checkpoint")
    assert code == 0, said


def _vouch(ledger: Path, packed: Path) -> None:
    """Both manifests name ``packed``'s new sha256, as a forger who edited them would."""
    sha = hashlib.sha256(packed.read_bytes()).hexdigest()
    for path in (ledger / retention.ARCHIVED, ledger / "archive" / retention.MANIFEST):
        raw = json.loads(path.read_text())
        raw["segments"][1]["gz_sha256"] = sha
        path.write_text(json.dumps(raw))


async def test_verify_names_an_archive_file_that_does_not_inflate(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A compressed file whose deflate stream is damaged (its sha256 vouched for in both
    manifests, so it is inflated): FAILED naming it, never zlib's traceback."""
    ledger, _ = await small_segments(tmp_path)
    assert main(["ledger", "archive", "--ledger", str(ledger)]) == 0
    packed = ledger / "archive" / "segment-00000002.jsonl.gz"
    data = bytearray(packed.read_bytes())
    data[12:40] = b"\xff" * 28  # just past the header: a deflate block that is no block
    packed.write_bytes(bytes(data))
    _vouch(ledger, packed)
    code, said = cli(capsys, ledger, "verify")
    assert code == 1 and f"FAILED: {packed}: unreadable archive file" in said, said
    assert "Traceback" not in said


async def test_verify_checks_the_archive_manifest_agrees_with_archived_json(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger, _ = await small_segments(tmp_path)
    assert main(["ledger", "archive", "--ledger", str(ledger)]) == 0
    copy = ledger / "archive" / retention.MANIFEST
    original = copy.read_bytes()
    copy.write_text('{"segments":[],"note":"edited"}')
    code, said = cli(capsys, ledger, "verify")
    assert code == 1 and f"FAILED: {copy}: names other archived segments than" in said, said
    copy.unlink()
    code, said = cli(capsys, ledger, "verify")
    assert code == 1 and f"FAILED: {copy}: missing" in said, said
    copy.write_bytes(original)
    assert cli(capsys, ledger, "verify")[0] == 0


async def test_from_checkpoint_passes_over_a_snapshot_the_chain_does_not_vouch_for(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger, _ = await small_segments(tmp_path)
    newest, older = checkpoints.listed(ledger)[:2]
    newest.write_bytes(newest.read_bytes()[:-1])
    code, said = cli(capsys, ledger, "verify", "--from-checkpoint")
    assert code == 0, said
    assert f"checkpoint passed over: {newest.name}" in said
    assert f"from checkpoint {older.name}" in said
    for path in checkpoints.listed(ledger):
        path.unlink()
    code, said = cli(capsys, ledger, "verify", "--from-checkpoint")
    assert code == 1 and "no checkpoint" in said, said


async def test_from_checkpoint_checks_the_chain_after_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An edit after the checkpoint fails --from-checkpoint; one before it is plain verify's."""
    ledger, _ = await small_segments(tmp_path)
    last = list_segments(ledger)[-1]
    data = last.read_bytes()
    flipped = b"0" if data[-4:-3] != b"0" else b"1"  # a hex digit of the last record's hash
    last.write_bytes(data[:-4] + flipped + data[-3:])
    code, said = cli(capsys, ledger, "verify", "--from-checkpoint")
    assert code == 1 and "FAILED" in said, said
    last.write_bytes(data)
    first = list_segments(ledger)[0]
    head = first.read_bytes()
    at = head.index(b"\n") - 3  # a hex digit of the first record's hash
    first.write_bytes(head[:at] + (b"0" if head[at:at + 1] != b"0" else b"1") + head[at + 1:])
    assert cli(capsys, ledger, "verify", "--from-checkpoint")[0] == 0
    assert cli(capsys, ledger, "verify")[0] == 1


async def test_from_checkpoint_says_an_expect_before_it_is_not_checked(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--expect of a record before the checkpoint it starts after: FAILED saying so, never
    a silent pass; at or after the checkpoint it is checked as usual."""
    ledger, _ = await small_segments(tmp_path)
    early = next(r for r in _records(ledger) if r.seq == 3)
    code, said = cli(capsys, ledger, "verify", "--from-checkpoint", "--expect",
                     f"3:{early.hash}")
    newest = checkpoints.listed(ledger)[0].name
    assert code == 1, said
    assert f"FAILED: --expect 3: before checkpoint {newest} (after record " in said, said
    assert "which --from-checkpoint starts after; not checked" in said, said
    last = _records(ledger)[-1]
    code, said = cli(capsys, ledger, "verify", "--from-checkpoint", "--expect",
                     f"{last.seq}:{last.hash}")
    assert code == 0 and f"--expect {last.seq}" in said, said
    assert cli(capsys, ledger, "verify", "--expect", f"3:{early.hash}")[0] == 0


def _records(ledger: Path) -> list[Record]:
    return [record_decoder.decode(line) for path in list_segments(ledger)
            for line in path.read_bytes().splitlines()]


async def test_a_lost_archived_json_refuses_rather_than_folding_a_partial_ledger(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without ``archived.json`` the offsets snapshots count no longer match the segments
    left: no checkpoint is vouched for, and the full fold finds the chain starting past seq
    1, so start-up refuses (exit 3) and verify fails; it never folds what is left."""
    ledger, cfg = await small_segments(tmp_path)
    assert main(["ledger", "archive", "--ledger", str(ledger)]) == 0
    (ledger / retention.ARCHIVED).unlink()
    with pytest.raises(LedgerCorrupt, match="expected seq 1"):
        recover(ledger, repair=False, risk=Risk(cfg), fold_key=fold_key(cfg))
    code, said = cli(capsys, ledger, "verify")
    assert code == 1 and "expected seq 1" in said, said
    # The likelier cause is named, with the copy that restores it.
    assert f"{ledger / retention.ARCHIVED} is missing beside {ledger / 'archive'}/" in said
    assert "copy archive/manifest.json to archived.json" in said, said
    shutil.copy(ledger / "archive" / retention.MANIFEST, ledger / retention.ARCHIVED)
    assert cli(capsys, ledger, "verify")[0] == 0


async def test_a_checkpoint_whose_last_record_ends_an_archived_segment_still_counts(
        tmp_path: Path) -> None:
    """The oldest kept checkpoint's last record ends a segment, which is archived, and its
    checkpoint record starts the first segment left: start-up from it (the newer ones
    damaged) still finds its record, and reaches the same state."""
    ledger, cfg = await small_segments(tmp_path)
    files = checkpoints.listed(ledger)
    at = checkpoints.through_of(files[-1].name)
    assert at is not None
    # The writer may rotate between record X and its checkpoint record: split there (the
    # bytes, and so every snapshot's resume offset, unchanged; segments renumbered).
    contents = [path.read_bytes() for path in list_segments(ledger)]
    for path in list_segments(ledger):
        path.unlink()
    for number, data in enumerate(contents, start=1):
        pieces = [data]
        for line in data.splitlines(keepends=True):
            if json.loads(line)["seq"] == at + 1 and not data.startswith(line):
                cut = data.index(line)
                pieces = [data[:cut], data[cut:]]
        for offset, piece in enumerate(pieces):
            (ledger / segment_name(2 * number + offset)).write_bytes(piece)
    used, before = state_of(ledger, cfg)
    assert used == files[0].name
    assert main(["ledger", "archive", "--ledger", str(ledger)]) == 0
    moved = retention.read_manifest(ledger / retention.ARCHIVED).segments
    assert moved[-1].last_seq == at
    for path in files[:-1]:
        path.write_bytes(path.read_bytes()[:-1])
    assert state_of(ledger, cfg) == (files[-1].name, before)


async def test_an_id_index_rebuilt_over_an_archived_ledger_is_refused(tmp_path: Path) -> None:
    """A checkpoint is usable but the id index is gone: rebuilding it needs the archived
    records' ids, so start-up refuses and says what to restore instead of rebuilding from
    what is left (which would let the archived intents run again); restored, it rebuilds."""
    ledger, cfg = await small_segments(tmp_path)
    used, state = state_of(ledger, cfg)
    assert main(["ledger", "archive", "--ledger", str(ledger)]) == 0
    shutil.rmtree(ledger / "index")
    with pytest.raises(LedgerArchived) as refused:
        recover(ledger, repair=False, risk=Risk(cfg), fold_key=fold_key(cfg))
    assert "id index must be rebuilt" in str(refused.value) and "gunzip" in str(refused.value)
    for packed in (ledger / "archive").glob("*.gz"):
        (ledger / packed.name.removesuffix(".gz")).write_bytes(gzip.decompress(
            packed.read_bytes()))
    (ledger / retention.ARCHIVED).unlink()
    assert state_of(ledger, cfg) == (used, state)


async def test_verify_passes_an_archive_stopped_between_its_two_manifests(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The archive's copy names one more segment than archived.json, still in the ledger
    (archive stopped after its first manifest write): that is no disagreement."""
    ledger, _ = await small_segments(tmp_path)

    def stop_at(step: str) -> None:
        if step == "manifest segment-00000003.jsonl":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        retention.archive(ledger, step=stop_at)
    names = [e.name for e in retention.read_manifest(ledger / "archive" / "manifest.json").segments]
    assert names[-1] == "segment-00000003.jsonl" and (ledger / names[-1]).exists()
    code, said = cli(capsys, ledger, "verify")
    assert code == 0 and "2 archived segments included" in said, said
