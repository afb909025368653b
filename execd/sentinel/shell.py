"""The Risk Sentinel's shell: the waiting around :class:`~execd.sentinel.core.SentinelCore`.

Batches in, decided batches out; control commands and live settlements on inboxes of
their own. Every decision is the core's (docs/ARCHITECTURE.md, "Actors and streams").
"""

from __future__ import annotations

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream
from anyio.streams.memory import MemoryObjectReceiveStream

from execd.model.messages import ReaderItem, RouterItem, Settled
from execd.sentinel.core import SentinelCore, control
from execd.service.control import ControlHook, ControlRequest, answer, refuse_waiting
from execd.service.liveness import Pulse, beating


async def run_sentinel(
    core: SentinelCore,
    receive: ObjectReceiveStream[list[ReaderItem]],
    send: ObjectSendStream[list[RouterItem]],
    commands: MemoryObjectReceiveStream[ControlRequest] | None = None,
    on_control: ControlHook | None = None,
    pulse: Pulse | None = None,
    most: int | None = None,
) -> None:
    """The sentinel's shell: batches in, decided batches out, until the reader closes.

    Control commands arrive on their own stream and are applied between batches (and
    between the parts of one, see ``SentinelCore.decide``: ``most`` items), so a halt
    takes effect on the very next batch even while this one waits downstream.
    """
    async with receive, send, anyio.create_task_group() as tg:
        if commands is not None:
            tg.start_soon(_commands, core, commands, send, on_control or (lambda r: None))
        caught_up = core.catch_up()
        if caught_up:
            await send.send(caught_up)
        async for batch in beating(receive, pulse):
            for part in core.decide(batch, most):
                await send.send(part)
        tg.cancel_scope.cancel()


async def _commands(core: SentinelCore, commands: MemoryObjectReceiveStream[ControlRequest],
                    send: ObjectSendStream[list[RouterItem]], on_control: ControlHook) -> None:
    async with commands:
        try:
            async for request in commands:
                await answer(request, control(core, request), send, on_control)
        finally:
            refuse_waiting(commands)


async def run_settlements(core: SentinelCore,
                          settlements: ObjectReceiveStream[Settled],
                          pulse: Pulse | None = None) -> None:
    """The sentinel's second inbox: settlements of live orders, folded in as they come.

    It outlives the intent stream: a live order's outcome becomes durable (and is
    settled) after the last intent has passed, until the ledger writer stops.
    """
    async with settlements:
        async for settled in beating(settlements, pulse):
            core.settle(settled)
