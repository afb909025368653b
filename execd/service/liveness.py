"""Is every actor still making progress? The watchdog's question.

Each actor owns a :class:`Pulse`. It counts a beat whenever the actor takes input
or goes back to waiting for it, and says whether the actor is *waiting for input*
(idle: nothing is owed) or *working*. Actors never read a clock for this, so the
paper path stays clock-free; only :class:`Liveness`, run by the daemon's
supervisor, compares beat counts over time.

An actor is stuck when it has been working, without a single beat, for longer
than the allowed time: blocked in a call that does not return, or waiting on a
downstream actor that is itself stuck (both are then reported). An actor that waits
for input is never stuck: its upstream is the one to look at.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Generic, TypeVar

import anyio
from anyio.abc import ObjectReceiveStream

T = TypeVar("T")


class Pulse:
    """One actor's beat counter and whether it waits for input."""

    __slots__ = ("beats", "idle", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.beats = 0
        self.idle = True

    def busy(self) -> None:
        """The actor took work."""
        self.beats += 1
        self.idle = False

    def rest(self) -> None:
        """The actor finished its work and waits for more."""
        self.beats += 1
        self.idle = True


class Beating(Generic[T]):
    """``async for`` over a receive stream that keeps ``pulse`` up to date.

    The actor counts as waiting while it awaits the next item, and as working from
    the moment it has one until it asks for the next.
    """

    __slots__ = ("_pulse", "_receive")

    def __init__(self, receive: ObjectReceiveStream[T], pulse: Pulse) -> None:
        self._receive = receive
        self._pulse = pulse

    def __aiter__(self) -> Beating[T]:
        return self

    async def __anext__(self) -> T:
        pulse = self._pulse
        pulse.rest()
        try:
            item = await self._receive.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None
        pulse.busy()
        return item


def beating(receive: ObjectReceiveStream[T], pulse: Pulse | None) -> AsyncIterator[T]:
    """``receive`` itself without a pulse; else an iterator that beats ``pulse``."""
    if pulse is None:
        return receive
    return Beating(receive, pulse)


class Liveness:
    """Every actor's pulse, and the judgement of which are stuck (sans-I/O: given times)."""

    def __init__(self) -> None:
        self.pulses: dict[str, Pulse] = {}
        # name -> (beats when last seen changing, time it was seen)
        self._seen: dict[str, tuple[int, float]] = {}

    def pulse(self, name: str) -> Pulse:
        """The pulse of actor ``name`` (made on first use)."""
        found = self.pulses.get(name)
        if found is None:
            found = self.pulses[name] = Pulse(name)
        return found

    def observer(self) -> Liveness:
        """A second judge over the same pulses, with a memory of its own.

        For a judge in another thread (the metrics endpoint's ``/healthz``): the
        supervisor's judgement is left as it is, and this one only reads the pulses.
        """
        other = Liveness()
        other.pulses = self.pulses
        return other

    def stuck(self, now: float, after: float) -> dict[str, float]:
        """Actors working without a beat for more than ``after`` seconds, with how long."""
        found: dict[str, float] = {}
        seen = self._seen
        # A copy (one C-level call, atomic under the GIL): an observer in another
        # thread must not see the dict grow while it walks it.
        for name, pulse in dict(self.pulses).items():
            last = seen.get(name)
            if last is None or last[0] != pulse.beats:
                seen[name] = (pulse.beats, now)
                continue
            if pulse.idle:
                continue
            silent = now - last[1]
            if silent > after:
                found[name] = silent
        return found


async def heartbeat(pulse: Pulse, every: float) -> None:
    """Beat ``pulse`` every ``every`` seconds, as working, until cancelled.

    The event loop's own pulse: an actor waiting for input is never stuck, so a loop
    blocked while every actor waits would go unseen without one. It is never idle,
    so a judge finds it stuck once the loop has not run it for the allowed time.
    """
    while True:
        pulse.busy()
        await anyio.sleep(every)
