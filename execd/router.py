"""The Router actor: sends each accepted intent to the adapter of its venue.

The venue-to-adapter map, and so the plane, comes from the config file alone;
an intent cannot choose it. Everything that is already an outcome goes straight
to the ledger writer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from anyio.abc import ObjectReceiveStream, ObjectSendStream

from execd.model.messages import Accepted, Entry, RouterItem
from execd.service.liveness import Pulse, beating


class RouterCore:
    """Splits a batch into one batch per adapter and one for the ledger."""

    def __init__(self, adapter_of_venue: Mapping[str, int], adapters: int) -> None:
        self.adapter_of_venue = adapter_of_venue
        self.adapters = adapters

    def route(self, batch: list[RouterItem]) -> tuple[list[list[Accepted]], list[Entry]]:
        """Per-adapter batches (index = adapter) and the entries for the ledger."""
        per_adapter: list[list[Accepted]] = [[] for _ in range(self.adapters)]
        direct: list[Entry] = []
        index = self.adapter_of_venue
        for item in batch:
            if type(item) is Accepted:
                per_adapter[index[item.intent.venue]].append(item)
            else:
                direct.append(item)  # type: ignore[arg-type]
        return per_adapter, direct


async def run_router(
    core: RouterCore,
    receive: ObjectReceiveStream[list[RouterItem]],
    adapters: Sequence[ObjectSendStream[list[Accepted]]],
    ledger: ObjectSendStream[list[Entry]],
    pulse: Pulse | None = None,
) -> None:
    """The router's shell.

    A full adapter inbox makes the router wait, which keeps outcomes independent of
    scheduling. Waiting is safe because no adapter's intake waits on a venue: paper
    and stub compute at once, and the ccxt adapter records each intent synchronously
    and refuses it ``VENUE_BACKLOG_FULL`` once its in-flight and backlog limits are
    taken, so a stalled exchange fills only its own backlog (docs/ARCHITECTURE.md,
    Determinism).
    """
    async with receive, ledger:
        try:
            async for batch in beating(receive, pulse):
                per_adapter, direct = core.route(batch)
                for stream, items in zip(adapters, per_adapter, strict=True):
                    if items:
                        await stream.send(items)
                if direct:
                    await ledger.send(direct)
        finally:
            for stream in adapters:
                await stream.aclose()
