"""What waits for a record to be durable, and the work after each fsync.

An actor that needs something done once its record is on disk puts the action on
the record itself (``Entry.then``, :mod:`execd.model.once_durable`); the ledger
writer lists the actions of each commit once it is fsynced
(``Commit.once_durable``), and :class:`Durability` carries them out, in commit
order. Only after the fsync are outcomes logged, input files moved and ``execd
ctl`` answered (docs/ARCHITECTURE.md, "Durability and restart").
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from execd.ledger.writer import Commit
from execd.model.clock import WallClock
from execd.model.messages import DriftRecord, Entry, ExecutionOutcome
from execd.model.once_durable import Answer, Call, MoveFile, OnceDurable, Wake
from execd.reader.inbox import InboxSource, StatKey
from execd.service.control import ControlRequest

if TYPE_CHECKING:
    from execd.service.metrics import Metrics


def answer_when_durable(request: ControlRequest) -> None:
    """Answer ``request`` once every record it made is durable.

    The reader's and the sentinel's control hook: called before the records are sent,
    so none can become durable unseen.
    """
    if request.entries:
        answer = Answer(len(request.entries), request.result, request.durable)
        for entry in request.entries:
            entry.then = answer


def move_when_durable(entry: Entry, key: StatKey | None) -> None:
    """The reader made an input_file record: its file moves once the record is durable."""
    entry.then = MoveFile(key)


class Durability:
    """The writer's ``on_durable`` hook: after each fsync, in commit order.

    Notes the durable head (``seq``, ``hash``), carries out what the commit's records
    asked for, then logs and counts the commit's outcomes.
    """

    def __init__(self, log: Any, *, outcomes_each: Callable[[], bool],
                 probe: Callable[[Commit], None] | None = None, tally: bool = False) -> None:
        self.log = log
        # ``execd ctl status``'s outcomes since start (``tally``: `execd run` only, so a
        # replay pays nothing per outcome): status -> count, and the last outcome's
        # (wall-clock ns when it became durable, logical time). Display only: none of
        # it reaches the ledger.
        self.tally = tally
        self.by_status: defaultdict[str, int] = defaultdict(int)
        self.last_outcome: tuple[int, int] | None = None
        # Read per commit: log.outcomes can change with a reload.
        self.outcomes_each = outcomes_each
        self.probe = probe
        self.seq = -1
        self.hash = ""
        self.metrics: Metrics | None = None
        # Where MoveFile actions go (the inbox of `execd run`; replay moves nothing).
        self.inbox: InboxSource | None = None

    def carry_out(self, seq: int, entry: Entry, action: OnceDurable) -> None:
        """Do what ``entry`` (durable at ledger seq ``seq``) asked for. Never blocks.

        A file's move is only queued here: the inbox's disposals task moves it, in a
        worker thread.
        """
        match action:
            case Wake():
                action.event.set()
            case Answer():
                action.arrived(seq)
            case MoveFile():
                assert self.inbox is not None
                self.inbox.record_durable(entry, action.key)
            case Call():
                action.fn(seq)

    def durable(self, commit: Commit) -> None:
        """``commit`` is on disk: act on it."""
        self.seq, self.hash = commit.last_seq, commit.last_hash
        for seq, entry, action in commit.once_durable():
            self.carry_out(seq, entry, action)
        if self.probe is not None:
            self.probe(commit)
        entries = commit.entries
        metrics = self.metrics
        each = self.outcomes_each()
        tally = self.tally
        if not each:
            self.log.info("ledger.commit", records=len(entries), last_seq=commit.last_seq)
            if metrics is None and not tally:
                return
        seq = commit.last_seq - len(entries)
        by_status, last = self.by_status, None
        for entry in entries:
            seq += 1
            body = entry.body
            if type(body) is ExecutionOutcome:
                if tally:
                    by_status[body.status] += 1  # a defaultdict: the cheapest count
                    last = entry
                if each:
                    # Bad input is a producer's problem someone must look at: a warning.
                    log = self.log.warning if body.status == "QUARANTINED" else self.log.info
                    log("outcome", seq=seq, intent_id=str(body.intent_id),
                        venue=body.venue, plane=body.plane, status=body.status,
                        reason=body.reason, detail=body.detail,
                        filled=str(body.filled_quantity))
                if metrics is not None:
                    metrics.outcome(body.status, body.reason, body.venue or "",
                                    body.plane or "")
            elif type(body) is DriftRecord and metrics is not None and body.state == "drift":
                metrics.drifted()
        if last is not None:
            # One wall-clock read per commit with outcomes, after its fsync: shown to
            # people (ctl status, a gauge), never recorded.
            self.last_outcome = (WallClock().now(), last.time)
