"""Venue adapters: each turns accepted intents into outcomes for one venue."""

from __future__ import annotations

from typing import Protocol

from anyio.abc import ObjectReceiveStream, ObjectSendStream

from execd.model.messages import Accepted, Entry, Plane
from execd.service.liveness import Pulse, beating


class Adapter(Protocol):
    """A synchronous adapter core: one outcome entry per accepted intent."""

    venue: str

    @property
    def plane(self) -> Plane:
        """The plane this adapter realises intents in."""
        ...

    def execute(self, item: Accepted) -> Entry:
        """Realise one intent."""
        ...


async def run_adapter(
    core: Adapter,
    receive: ObjectReceiveStream[list[Accepted]],
    send: ObjectSendStream[list[Entry]],
    pulse: Pulse | None = None,
) -> None:
    """The shell shared by adapters whose core needs no I/O."""
    execute = core.execute
    async with receive, send:
        async for batch in beating(receive, pulse):
            await send.send([execute(item) for item in batch])
