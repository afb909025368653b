"""A ccxt venue's reads of what the account holds (README, "What the venue holds"):
the thin shell around :mod:`execd.venues.ccxt.holdings`.

At start-up (the balance the connect read) and then every ``holdings_ms`` (0: only at
start-up), a ``holdings`` record when what the venue holds changed. A read is *quiet*
when no order was in flight at the venue before it and none was started until its
record is durable: only then does the Risk Sentinel compare it with the ledger, so an
order filled at the venue but not yet in the ledger (or the reverse) is never drift.
A read that fails is a warning; the next interval tries again.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from anyio.abc import ObjectSendStream

from execd.model.messages import LATE, Entry, HoldingsIn, HoldingsRecord
from execd.venues.ccxt.calls import message_of
from execd.venues.ccxt.holdings import amounts

if TYPE_CHECKING:
    from execd.venues.ccxt.venue import CcxtVenue


async def run(venue: CcxtVenue, send: ObjectSendStream[list[Entry]]) -> None:
    """Record the start-up's holdings, then read them every interval until the stop."""
    async with send:
        await venue.ready.wait()
        last: tuple[dict[str, Decimal], dict[str, Decimal]] | None = None
        balance, started = venue.startup.balance, 0
        quiet = not venue.startup.had_unresolved
        compared = False  # the last record written was read quiet
        why: Literal["start", "poll"] = "start"
        durable: list[tuple[HoldingsRecord, int]] = []  # the last record, once durable
        while not venue.stopping.is_set():
            if balance is not None:
                found = (amounts(balance, "total"), amounts(balance, "free"))
                quiet = quiet and venue.orders_started == started
                # Unchanged holdings are written again once a quiet read can compare
                # what a busy one saw (a fill it overlapped), so none goes uncompared.
                if found != last or (quiet and not compared):
                    last, compared = found, quiet
                    await send.send([_entry(venue, why, found, quiet, started, durable)])
                elif durable:
                    # The same holdings read again: no record, but the one held is fresh.
                    record, seq = durable[0]
                    venue.settle(HoldingsIn(record, seq, read=venue.wall.now()))
            why = "poll"
            every = venue.table.holdings_ms
            await venue.driver.pause(every / 1000 if every else 1.0)
            if not every or venue.stopping.is_set():
                balance = None
                continue
            quiet = not venue.in_flight and not venue.waiting
            started = venue.orders_started
            with venue.cuttable():
                balance = await _read(venue)


async def _read(venue: CcxtVenue) -> Any:
    try:
        return await venue.calls.call("fetch_balance")
    except Exception as exc:  # noqa: BLE001 - a failed read waits for the next interval
        venue.log.warning("venue.holdings_unread", error=message_of(exc))
        return None


def _entry(venue: CcxtVenue, why: Literal["start", "poll"],
           found: tuple[dict[str, Decimal], dict[str, Decimal]], quiet: bool,
           started: int, durable: list[tuple[HoldingsRecord, int]]) -> Entry:
    record = HoldingsRecord(venue.venue, why, found[0], found[1], quiet, venue.wall.now())
    entry = Entry(LATE, "holdings", venue.time, record)

    def then(seq: int) -> None:
        durable[:] = [(record, seq)]
        # Compared only if still quiet: no order was started since the read.
        venue.settle(HoldingsIn(record, seq, quiet and venue.orders_started == started))

    venue.when_durable(entry, then)
    return entry
