"""What an order's lifecycle asks its shell to do (actions), and what it is fed (events).

The vocabulary between :class:`~execd.venues.ccxt.order.Order` (pure) and the
ccxt venue's shell (:mod:`~execd.venues.ccxt.venue`): each action says one thing to
do, the shell does it and feeds back one event. Times are nanoseconds on the one
clock the shell reads (see :mod:`~execd.venues.ccxt.order`).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Literal

from msgspec import Struct

from execd.model.messages import Entry, ExecutionOutcome
from execd.venues.ccxt.exchanges import Verdict

MS = 1_000_000
# The longest pause between reads of an order whose state cannot be read.
MAX_BACKOFF = 30_000 * MS
# Calls that may still fail once the daemon is stopping, before an order is left
# for the next start-up to reconcile.
TRIES_WHILE_STOPPING = 3
STOP_DOUBT = "the venue could not say what became of it during the stop"

CancelWhy = Literal["order_timeout_ms", "stopping", "schedule_ended"]

# ------------------------------------------------------------------- actions


class Wait(Struct, frozen=True):
    """Wait until ``until``; earlier on an update pushed for the order, or on a stop."""

    until: int
    push: bool = False
    stop: bool = True


class AfterWindow(Struct, frozen=True):
    """A start-up's lookups found nothing: ask again once the acceptance window since
    the start (``until``) has passed; the shell waits once for all such orders."""

    until: int


class Send(Struct, frozen=True):
    """Send the order (its ``attempt``-th send); feed back Placed or SendFailed."""

    attempt: int


class Lookup(Struct, frozen=True):
    """Look the order up by client order id; feed back Found or CallFailed."""


class Follow(Struct, frozen=True):
    """The order is at the venue: follow it on the order stream from now on; feed Ok."""

    venue_order_id: Any
    order: dict[str, Any]


class Read(Struct, frozen=True):
    """Read the followed order by its venue id; feed back Got or CallFailed."""

    venue_order_id: Any


class Cancel(Struct, frozen=True):
    """Ask the venue to cancel it; feed back Cancelled or CallFailed."""

    venue_order_id: Any
    why: CancelWhy


class ReadTrades(Struct, frozen=True):
    """Read the final order's trades (for its fees); feed back Got or CallFailed."""

    venue_order_id: Any


class Write(Struct, frozen=True):
    """Hand ``entries`` to the ledger (and, ``durable``, wait until they are); feed Ok."""

    entries: tuple[Entry, ...]
    durable: bool = False


class Queue(Struct, frozen=True):
    """Reconciled: give the order to a worker, which feeds Ok when it takes it."""


class Done(Struct, frozen=True):
    """The end: write ``outcome`` after ``before`` (one commit), or leave it in doubt."""

    outcome: ExecutionOutcome | None = None
    before: tuple[Entry, ...] = ()
    in_doubt: str | None = None


Action = Wait | AfterWindow | Send | Lookup | Follow | Read | Cancel | ReadTrades | Write \
    | Queue | Done

# -------------------------------------------------------------------- events


class Ok(Struct, frozen=True):
    """The action is carried out (a wait ended, records handed over, the order taken)."""


class Placed(Struct, frozen=True):
    """The venue answered the send with this order (readable: see exchanges.readable_order)."""

    order: dict[str, Any]


class SendFailed(Struct, frozen=True):
    """The send failed or its reply was not the order: what that says, and the message."""

    verdict: Verdict
    message: str


class Found(Struct, frozen=True):
    """A lookup's answer: the venue's order, or None for "no such order"."""

    order: dict[str, Any] | None


class Got(Struct, frozen=True):
    """A read's answer: the order (Read) or its trades (ReadTrades)."""

    value: Any


class Cancelled(Struct, frozen=True):
    """The venue took the cancel (its reply), or None: it had no such order open."""

    order: dict[str, Any] | None


class CallFailed(Struct, frozen=True):
    """A lookup, read or cancel failed: the venue's message."""

    message: str


Event = Ok | Placed | SendFailed | Found | Got | Cancelled | CallFailed


class Note(Struct, frozen=True):
    """A log line the shell writes for the order (the shell adds its ids)."""

    level: Literal["info", "warning"]
    event: str
    fields: dict[str, Any]


# One phase of a lifecycle: yields actions, is sent events.
Steps = Generator[Action, Event, None]
