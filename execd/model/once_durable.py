"""What a ledger record asks to be done once it is durable.

A record (:class:`execd.model.messages.Entry`) may carry one of these values in
``then``. The ledger writer does nothing with it until the commit that holds the
record is fsynced; then it lists each record's action with the record's ledger seq,
in commit order (``execd.ledger.writer.Commit.once_durable``), and the daemon carries
them out (``execd.app.durable``). This is what "durable before acknowledged" and
"durable before acting" mean in docs/ARCHITECTURE.md ("Durability and restart"):
nothing that depends on a record happens before the record is on disk.

Entries are ``gc=False`` (hot path, see docs/ARCHITECTURE.md, "Hot-path choices"):
the cyclic GC never looks inside them, so an action must never refer back to its
own entry, or the pair could never be freed. These values hold only what the action
needs (an event, a stat key, a counter), never the entry; the record itself is
handed to whoever carries the action out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
from msgspec import Struct


class Wake(Struct, frozen=True):
    """Set ``event``: a task waits for this record (an order to send, a change recorded)."""

    event: anyio.Event


class MoveFile(Struct, frozen=True):
    """The record is an input_file record: its file may now leave work/.

    ``key`` is the file's stat key (inode, size, mtime_ns, ctime_ns) when the reader
    finished it, so the move can tell whether a producer touched it since; None for
    a file refused whole.
    """

    key: tuple[int, int, int, int] | None


class Answer(Struct):
    """One of the records an ``execd ctl`` command made; shared by all of them.

    The command is answered once ``left`` reaches zero: every one of its records is
    durable. ``result`` is the command's answer, which gets the last record's seq.
    """

    left: int
    result: dict[str, Any]
    durable: anyio.Event

    def arrived(self, seq: int) -> None:
        """One more of the command's records is durable at ledger seq ``seq``."""
        self.result["ledger_seq"] = seq
        self.left -= 1
        if not self.left:
            self.durable.set()


class Call(Struct, frozen=True):
    """Call ``fn`` with the record's ledger seq: an actor's own follow-up.

    The ccxt venue settles a live outcome with the sentinel this way. ``fn`` must not
    refer to the entry (see the module docstring).
    """

    fn: Callable[[int], None]


OnceDurable = Wake | MoveFile | Answer | Call
