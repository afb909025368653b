"""The Risk Sentinel's shell: the waiting around :class:`~execd.sentinel.core.SentinelCore`.

Batches in, decided batches out; control commands and live settlements on inboxes of
their own. Every decision is the core's (docs/ARCHITECTURE.md, "Actors and streams").
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream
from anyio.streams.memory import MemoryObjectReceiveStream

from execd.model.messages import HoldingsIn, ReaderItem, RouterItem, Settled
from execd.reader.context import LakehouseContext
from execd.schedule.core import NEVER
from execd.sentinel.core import SentinelCore, control
from execd.service.control import ControlHook, ControlRequest, answer, refuse_waiting
from execd.service.liveness import Pulse, beating


class Nudge:
    """Tells the sentinel's schedule task to look again (a live child settled)."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self, seconds: float) -> None:
        """Until nudged, or ``seconds`` have passed; the nudge is used up."""
        with anyio.move_on_after(seconds):
            await self._event.wait()
        if self._event.is_set():
            self._event = anyio.Event()


# The longest the schedule task sleeps under the wall clock before it looks again (a
# schedule opened meanwhile may be due sooner than what it slept towards).
LOOK_AGAIN_S = 1.0


async def run_sentinel(
    core: SentinelCore,
    receive: ObjectReceiveStream[list[ReaderItem]],
    send: ObjectSendStream[list[RouterItem]],
    commands: MemoryObjectReceiveStream[ControlRequest] | None = None,
    on_control: ControlHook | None = None,
    pulse: Pulse | None = None,
    most: int | None = None,
    now: Callable[[], int] | None = None,
    nudge: Nudge | None = None,
    ready: Callable[[], Awaitable[bool]] | None = None,
    first: LakehouseContext | None = None,
) -> None:
    """The sentinel's shell: batches in, decided batches out, until the reader closes.

    Control commands arrive on their own stream and are applied between batches (and
    between the parts of one, see ``SentinelCore.decide``: ``most`` items), so a halt
    takes effect on the very next batch even while this one waits downstream.

    Schedules: under the logical clock the input's records release children (in
    ``decide``); what a live child's settlement leaves to record is recorded when
    ``nudge`` says so. Under the wall clock (``now``) the schedule task also wakes when
    the next slice is due. Neither, nor the first step after a restart (``catch_up``),
    happens before ``ready`` says the live venues are ready (False: the daemon stopped
    first): a child released earlier would find its venue not ready and fail. ``first``:
    the lakehouse context as of the start, recorded and used before the catch-up.
    """
    async with receive, send, anyio.create_task_group() as tg:
        if commands is not None:
            tg.start_soon(_commands, core, commands, send, on_control or (lambda r: None))
        if ready is None or await ready():
            caught_up = core.catch_up(first)
            if caught_up:
                await send.send(caught_up)
            if nudge is not None:
                tg.start_soon(_schedules, core, send, now, nudge, most)
        async for batch in beating(receive, pulse):
            for part in core.decide(batch, most):
                await send.send(part)
            if now is not None and nudge is not None and core.schedules.due_at < NEVER:
                nudge.set()  # a schedule opened: its slices may be due before the sleep ends
        tg.cancel_scope.cancel()


async def _schedules(core: SentinelCore, send: ObjectSendStream[list[RouterItem]],
                     now: Callable[[], int] | None, nudge: Nudge, most: int | None) -> None:
    while True:
        seconds = math.inf
        if now is not None:
            due = core.schedules.due_at
            seconds = LOOK_AGAIN_S if due >= NEVER else min(max(due - now(), 0) / 1e9,
                                                             LOOK_AGAIN_S)
        await nudge.wait(seconds)
        out = core.step(now() if now is not None else core.time, most)
        if out:
            await send.send(out)


async def _commands(core: SentinelCore, commands: MemoryObjectReceiveStream[ControlRequest],
                    send: ObjectSendStream[list[RouterItem]], on_control: ControlHook) -> None:
    async with commands:
        try:
            async for request in commands:
                await answer(request, control(core, request), send, on_control)
        finally:
            refuse_waiting(commands)


async def run_settlements(core: SentinelCore,
                          settlements: ObjectReceiveStream[Settled | HoldingsIn],
                          pulse: Pulse | None = None, nudge: Nudge | None = None) -> None:
    """The sentinel's second inbox: settlements of live orders, folded in as they come.

    It outlives the intent stream: a live order's outcome becomes durable (and is
    settled) after the last intent has passed, until the ledger writer stops. A
    schedule's child nudges the schedule task, which records what it leads to (while
    the sentinel runs: after a drain, the next start does, from the ledger).
    """
    async with settlements:
        async for settled in beating(settlements, pulse):
            if type(settled) is HoldingsIn:
                # A venue's holdings: compared (and their records written) by the
                # schedule task's next step, which records what the sentinel finds.
                if core.risk is not None:
                    core.risk.drift.holdings(settled.record, settled.seq, settled.read)
                    if settled.compare:
                        core.risk.arrived.append(settled)
                        if nudge is not None:
                            nudge.set()
            elif core.settle(settled) and nudge is not None:  # type: ignore[arg-type]
                nudge.set()
