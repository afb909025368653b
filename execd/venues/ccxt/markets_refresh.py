"""A ccxt venue's periodic reads of its market rules and status (README, "Can it trade
now"): the thin shell around :mod:`execd.venues.ccxt.tradability`.

Every ``markets_refresh_ms`` (0: never, the rules stay those of the start-up) once the
venue is ready: ``load_markets(True)``, and ``fetch_status()`` where ccxt offers it.
New rules take effect for the next order the venue prepares; a status other than
``ok`` skips orders until a read says ``ok`` again. What changed is written as a LATE
``venue_status`` record. A read that fails is a warning and changes nothing. The
first read comes one interval after the start, whose own ``load_markets`` is fresh.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from anyio.abc import ObjectSendStream

from execd.model.messages import LATE, Entry, VenueStatusRecord
from execd.venues.ccxt.calls import message_of
from execd.venues.ccxt.tradability import Tradability, inactive, status_of

if TYPE_CHECKING:
    from execd.venues.ccxt.venue import CcxtVenue


async def run(venue: CcxtVenue, send: ObjectSendStream[list[Entry]]) -> None:
    """Read ``venue``'s markets and status every interval until the daemon stops."""
    async with send:
        await venue.ready.wait()
        while not venue.stopping.is_set():
            every = venue.table.markets_refresh_ms
            if not every:
                # Off: look again later, in case a reload turns it on.
                await venue.driver.pause(1.0)
                continue
            await venue.driver.pause(every / 1000)
            if venue.stopping.is_set():
                return
            with venue.cuttable():
                found = await read(venue)
            before = venue.tradability
            if found is not None and found != before:
                venue.tradability = found
                halted = tuple(sorted(set(found.inactive) - set(before.inactive)))
                resumed = tuple(sorted(set(before.inactive) - set(found.inactive)))
                record = VenueStatusRecord(venue.venue, found.status, len(venue.rules),
                                           len(found.inactive), halted, resumed,
                                           venue.wall.now())
                venue.log.warning("venue.status_changed", status=found.status,
                                  halted=list(halted), resumed=list(resumed),
                                  markets=len(venue.rules))
                await send.send([Entry(LATE, "venue_status", venue.time, record)])


async def read(venue: CcxtVenue) -> Tradability | None:
    """The rules and status as the venue gives them now (the rules are taken at once);
    None when neither could be read."""
    before = venue.tradability
    status, rules = before.status, None
    if venue.exchange.has.get("fetchStatus"):
        try:
            status = status_of(await venue.calls.call("fetch_status"), before.status)
        except Exception as exc:  # noqa: BLE001 - a failed read is never maintenance
            venue.log.warning("venue.status_unread", error=message_of(exc))
    try:
        markets = await venue.calls.call("load_markets", True)
    except Exception as exc:  # noqa: BLE001 - the rules as last read stay in force
        venue.log.warning("venue.markets_unread", error=message_of(exc))
    else:
        if isinstance(markets, dict) and markets:
            rules = {symbol: venue.startup.rules(market) for symbol, market in markets.items()}
            venue.rules = rules
    if rules is None and status == before.status:
        return None
    return Tradability(status, inactive(venue.rules))
