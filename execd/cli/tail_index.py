"""``execd ledger tail --intent`` through the positions index (ledger/index/positions.py).

For the prefix of the ledger the index covers, the records to read are those of the
ids the ``--intent`` prefix allows, and every ``start`` record (each says the clock of
the records after it): each is read at its offset, checked (it must be the record the
index names: its seq and its intent id, or a start), and rendered by tail's own
renderer, in ledger order. Tail then reads linearly from just after the index's last
record, as it reads the whole ledger without the index. The output is the same, byte
for byte: every other record of the covered prefix is one the filter drops without
changing what is shown after it.

Tail is a reader: it never writes the index. When the index is missing, damaged,
belongs to another ledger (its last record is not where it says, with its hash) or
covers nothing yet, tail says so on stderr and reads the whole ledger. When a record
is not the one the index names, tail says so and reads on linearly from just after
the last record it showed. Records in archived segments are not read (tail reads the
ledger directory's segments, with the index or without): how many of them the index
names is said on stderr. The covered prefix was whole when the daemon indexed it; a
ledger edited since is ``execd ledger verify``'s to find, not tail's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

from execd.ledger.index import positions
from execd.ledger.index.positions import Found, View, prefix_range, read_line
from execd.ledger.index.store import DIRECTORY
from execd.ledger.places import Layout, LineReader
from execd.model.errors import IndexDamaged

Render = Callable[[bytes], bytes | None]


def indexed(ledger: Path, prefix: str, render: Render, position: dict[Path, int],
            err: TextIO) -> Iterator[bytes]:
    """What tail prints for the part of ``ledger`` the positions index covers, rendered
    by ``render``; ``position`` (per segment, tail's) is left where tail reads on."""
    def note(text: str) -> None:
        err.write(f"execd ledger tail: {text}\n")
        err.flush()

    try:
        view = View.open(ledger / DIRECTORY / positions.DIRECTORY)
    except IndexDamaged as exc:
        note(f"positions index not used ({exc}): reading the whole ledger")
        return
    try:
        layout = Layout.read(ledger)
        why = _unusable(view, layout)
        if why:
            note(f"positions index not used ({why}): reading the whole ledger")
            return
        yield from _covered(view, layout, prefix, render, position, note)
    except IndexDamaged as exc:
        # Only View.between raises it, before anything is shown.
        note(f"positions index not used ({exc}): reading the whole ledger")
    finally:
        view.close()


def _unusable(view: View, layout: Layout) -> str:
    """Why the index cannot stand for this ledger's prefix ("" when it can)."""
    span = view.manifest.span
    if span is None:
        return "it covers no record yet"
    if span.first > layout.archived:
        return "it begins after the ledger's first segment"
    if span.end > layout.end:
        return "it covers more than the ledger holds"
    if span.last < layout.archived:
        return "its last record is archived"
    reader = LineReader(layout)
    try:
        line = reader.line_at(span.last)
    finally:
        reader.close()
    named = read_line(line) if line is not None else None
    if named is None or line is None or named.seq != view.manifest.through_seq \
            or named.hash != span.head_hash or span.last + len(line) + 1 != span.end:
        return f"byte {span.last} is not record {view.manifest.through_seq} as it says"
    return ""


def _covered(view: View, layout: Layout, prefix: str, render: Render,
             position: dict[Path, int], note: Callable[[str], None]) -> Iterator[bytes]:
    span = view.manifest.span
    assert span is not None
    wanted = prefix_range(prefix)
    found = view.between(*wanted) if wanted is not None else []
    starts = [] if wanted is not None and wanted[0] == 0 else view.between(0, 1)
    reader = LineReader(layout)
    archived = 0
    try:
        for item in _in_order(found, starts):
            if item.offset < layout.archived:
                archived += 1 if item.intent else 0
                continue
            line = reader.line_at(item.offset)
            named = read_line(line) if line is not None else None
            if line is None or named is None or named.seq != item.seq \
                    or named.intent != item.intent:
                note(f"byte {item.offset} is not record {item.seq} as the positions index "
                     "says: reading on without it")
                return
            text = render(line)
            _moved(position, layout, item.offset + len(line) + 1)
            if text is not None:
                yield text
        _moved(position, layout, span.end)
    finally:
        reader.close()
        if archived:
            note(f"{archived} records of intents starting with {prefix!r} are in archived "
                 "segments, not read (tail reads the ledger directory's segments)")


def _in_order(found: list[Found], starts: list[Found]) -> Iterator[Found]:
    """``found`` and ``starts`` (each sorted by seq) as one sequence in ledger order."""
    at = 0
    for item in found:
        while at < len(starts) and starts[at].seq < item.seq:
            yield starts[at]
            at += 1
        yield item
    yield from starts[at:]


def _moved(position: dict[Path, int], layout: Layout, offset: int) -> None:
    place = layout.locate(offset)
    if place is not None:
        position.update(layout.positions_before(place))
