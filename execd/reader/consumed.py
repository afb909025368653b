"""The inbox's questions to the consumed-file tables: was this name seen, how many claims.

With checkpoints on, the finished and rejected files of every earlier run are in the
on-disk tables (:class:`~execd.ledger.index.files.FileTables`, ``ledger/file_index.py``),
so the inbox no longer copies them into a set and a dict at start-up: :class:`Seen` and
:class:`Repeats` are the set and the dict it always used, holding only what this run
adds (names claimed, claim numbers taken), and asking the tables about anything else.
With checkpoints off the inbox keeps its plain set and dict, made from the tables in
memory as before (``reader/inbox.py``).
"""

from __future__ import annotations

from collections.abc import Iterable

from execd.ledger.index.files import DoneTable, FileTables, NameTable, tables_of
from execd.reader.lakehouse import CLAIM, count_claim


class Seen(set[str]):
    """Every name ever claimed: this run's claims (the set's own), and the names the
    tables say were consumed (finished, or rejected and not a claim name).

    Only ``in`` and ``add`` are asked of it (``reader/inbox.py``, ``reader/leftovers.py``);
    iterating it gives this run's names alone.
    """

    def __init__(self, tables: FileTables) -> None:
        super().__init__()
        self.tables = tables

    def __contains__(self, name: object) -> bool:
        if super().__contains__(name):
            return True
        return isinstance(name, str) and self.tables.consumed(name)


class Repeats(dict[str, int]):
    """The highest claim number per base name: this run's (the dict's own, which only
    rise from the tables' through ``get``), else the tables' rejected claims.

    Only ``get`` and item assignment are asked of it (``lakehouse.count_claim``, claims).
    """

    def __init__(self, tables: FileTables) -> None:
        super().__init__()
        self.tables = tables

    def get(self, base: str, default: int = 0, /) -> int:  # type: ignore[override]
        """The highest claim number of ``base`` so far (``default`` when none)."""
        if super().__contains__(base):
            return self[base]
        return self.tables.repeats(base) or default


def seen_and_repeats(done: DoneTable, refusing: Iterable[str], rejected: NameTable
                     ) -> tuple[set[str], dict[str, int]]:
    """The inbox's names ever claimed, and highest claim number per base name, from the
    fold's tables: copied from a dict and sets, or asked of the on-disk tables."""
    tables = tables_of(rejected)
    seen: set[str]
    repeats: dict[str, int]
    if tables is None:
        assert isinstance(done, dict)
        assert isinstance(rejected, set)
        seen = set(done) | {n for n in rejected if not CLAIM.match(n)}
        repeats = {}
        claims: tuple[str, ...] = (*refusing, *rejected)
    else:
        # The tables count their rejected claims themselves.
        seen, repeats, claims = Seen(tables), Repeats(tables), tuple(refusing)
    for claim in claims:
        count_claim(repeats, claim)
    return seen, repeats
