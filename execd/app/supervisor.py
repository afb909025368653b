"""The daemon towards its signals and its service manager.

SIGTERM and SIGINT begin the drain, SIGHUP reloads the config; systemd hears
READY=1 once the reader may start, STATUS= with what the daemon is doing,
WATCHDOG=1 while every actor makes progress, and STOPPING=1 when the drain begins
(docs/ARCHITECTURE.md, "Under the service manager").

It lives in app/, not service/: it decides what a signal means for this daemon
and what its status line says, so it reads the daemon's state, while service/
keeps the mechanisms that know nothing of the daemon (the notify socket, the
pulses, the metrics server, the control socket).
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskGroup

from execd.service import logs
from execd.service.notify import watchdog_seconds

if TYPE_CHECKING:
    from execd.app.daemon import Daemon

# How often STATUS= is refreshed for `systemctl status` (without a watchdog).
STATUS_SECONDS = 5.0
# How long start-up's recovery may go without a beat (Daemon.recovery) before the
# manager is no longer asked to wait for it, with no watchdog set (with one: half its
# period, as for an actor).
RECOVERY_SILENT_S = 15.0
# What the manager is told to allow after recovery, for the venues (the unit's
# TimeoutStartSec): a start that recovered for longer is not cut short right after.
AFTER_RECOVERY_S = 300.0


class Supervisor:
    """Signals in; READY, STATUS, WATCHDOG and STOPPING out, for one daemon."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.notifier = daemon.notifier
        self.ready_sent = False

    def status_line(self) -> str:
        """One line for ``systemctl status``: what the daemon is doing now."""
        daemon = self.daemon
        risk = daemon.risk
        trading = f"trading {risk.state}" if risk is not None else ""
        live = daemon.live
        venues = ", ".join(f"{v.venue} {v.state}" for v in live)
        if daemon.stopping.is_set():
            head = "draining"
        elif not self.ready_sent:
            head = f"waiting for venues ({venues})" if live else "starting"
            venues = ""
        else:
            head = "running"
        parts = [head, trading, f"ledger seq {daemon.durability.seq}"]
        if venues:
            parts.append(f"live: {venues}")
        return "; ".join(p for p in parts if p)

    def waiting(self) -> None:
        """The reader waits for the live venues to be ready."""
        self.notifier.status(self.status_line())

    def ready(self) -> None:
        """Start-up is over (recovered, venues ready): the reader starts now."""
        self.ready_sent = True
        self.daemon.log.info("daemon.ready", planes=self.daemon.config.planes())
        self.notifier.ready(self.status_line())

    def reloaded(self, status: str) -> None:
        """End a reload for the service manager: READY=1 only if start-up had finished
        and no drain began (a reload must not complete a start job, or undo STOPPING=1)."""
        if self.ready_sent and not self.daemon.stopping.is_set():
            self.notifier.ready(status)
        else:
            self.notifier.status(status)

    def drain(self, name: str) -> None:
        """Begin the drain that a stop signal asks for."""
        daemon = self.daemon
        daemon.stop_reason = f"signal {name}"
        daemon.log.info("daemon.draining", signal=name)
        daemon.stopping.set()
        self.notifier.stopping(f"draining after {name}: finishing what is in flight")

    async def signals(self, signals: AsyncIterator[int], tg: TaskGroup) -> None:
        """Act on each signal received until the run ends."""
        async for signum in signals:
            name = signal.Signals(signum).name
            if signum == signal.SIGHUP:
                # Its own task: a SIGTERM during a reload still starts the drain at once.
                tg.start_soon(self.daemon.commands.reload, "SIGHUP", "signal SIGHUP")
                continue
            if self.daemon.stopping.is_set():
                self.daemon.log.warning("daemon.already_draining", signal=name)
                continue
            self.drain(name)

    async def supervise(self) -> None:
        """WATCHDOG=1 while every actor makes progress; STATUS= kept current.

        The ping period is a third of the manager's watchdog time, and an actor
        counts as stuck after half of it, so one stuck actor stops the pings well
        before the manager gives up on the whole daemon.
        """
        period = watchdog_seconds()
        tick = period / 3 if period is not None else STATUS_SECONDS
        withheld: dict[str, float] = {}
        log = logs.get("supervisor")
        liveness = self.daemon.liveness
        beats = (-1, 0.0)
        silent = period / 2 if period is not None else RECOVERY_SILENT_S
        while True:
            status = self.status_line()
            now = anyio.current_time()
            recovery = self.daemon.recovery
            if recovery.beats != beats[0]:
                beats = (recovery.beats, now)
            if not self.ready_sent and not recovery.idle and now - beats[1] <= silent:
                # A long recovery (a full fold, an index rebuilt) that is making progress
                # must not be cut short by TimeoutStartSec, and so killed and begun again
                # from nothing, forever: while it beats, each tick asks for three more.
                self.notifier.extend(3 * tick)
            if period is not None:
                stuck = liveness.stuck(now, period / 2)
                if stuck and not withheld:
                    log.error("watchdog.withheld", stuck={k: round(v, 1) for k, v in stuck.items()})
                elif withheld and not stuck:
                    log.warning("watchdog.resumed", were_stuck=sorted(withheld))
                withheld = stuck
                if stuck:
                    status = f"STUCK: {', '.join(sorted(stuck))} (no progress); {status}"
                else:
                    self.notifier.watchdog()
            self.notifier.status(status)
            await anyio.sleep(tick)
