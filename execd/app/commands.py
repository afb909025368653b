"""What each ``execd ctl`` request does in the daemon (the server side of the socket).

A tick goes to the reader, a reload is applied here (the sentinel records it),
every other command goes to the sentinel; each is answered once the records it
made are durable (docs/ARCHITECTURE.md, "The control socket" and "Reload").
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from execd import __version__
from execd.app.reload import changes, needs_restart
from execd.config import resolved
from execd.config import schema as config_file
from execd.config.digest import settings_sha256
from execd.config.schema import ConfigError, LoadedConfig
from execd.model.clock import WallClock, monotonic
from execd.model.errors import ReloadRefused
from execd.reader.inbox import NO_BACKLOG
from execd.sentinel.core import Reconfigure
from execd.service import logs
from execd.service.control import ControlRequest, Request

if TYPE_CHECKING:
    from execd.app.daemon import Daemon

# Operator commands waiting for their actor; a full queue makes `execd ctl` wait.
COMMAND_QUEUE = 8


#: The pseudo-key a reload's record names when the policy file's content changed.
POLICY_KEY = "policies.sha256"


def _policy_sha256(loaded: LoadedConfig) -> str | None:
    return None if loaded.policy is None else loaded.policy.sha256


def _policy_status(loaded: LoadedConfig) -> dict[str, Any] | None:
    """The status reply's policy: its file, digest and rules (None: no policy file)."""
    policy = loaded.policy
    if policy is None:
        return None
    return {"path": str(Path(policy.path).absolute()), "sha256": policy.sha256,
            "rules": sorted(policy.file.rules)}


class Commands:
    """Carries out ``execd ctl`` requests (and SIGHUP's reload) for one daemon."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        # Operator commands, to the actor that carries each out.
        self.to_reader, self.reader_commands = anyio.create_memory_object_stream[
            ControlRequest](COMMAND_QUEUE)
        self.to_sentinel, self.sentinel_commands = anyio.create_memory_object_stream[
            ControlRequest](COMMAND_QUEUE)
        self.reloads = {"applied": 0, "refused": 0}
        self._reload_lock = anyio.Lock()

    async def command(self, req: Request) -> dict[str, Any]:
        """Carry out one ``execd ctl`` command; answer once its records are durable."""
        if req.command == "reload":
            return await self.reload(req.actor or "", req.reason or "")
        if req.command == "config":
            return resolved.reply(self.daemon.loaded.path, self.daemon.config)
        log = self.daemon.log
        request = ControlRequest(req)
        stream = self.to_reader if req.command == "tick" else self.to_sentinel
        try:
            await stream.send(request)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            return {"ok": False, "error": "the daemon is stopping"}
        await request.done.wait()
        if request.error is not None:
            log.warning("control.refused", command=req.command, operator=req.actor,
                        error=request.error)
            return {"ok": False, "error": request.error}
        if request.entries:
            await request.durable.wait()
        reply: dict[str, Any] = {"ok": True, "command": req.command, **request.result}
        if req.command == "status":
            reply.update(self.status())
        else:
            log.info("control.done", command=req.command, operator=req.actor,
                     reason=req.reason, **request.result)
        return reply

    def status(self) -> dict[str, Any]:
        """What ``execd ctl status`` adds to the sentinel's answer.

        Raw values (integers, seconds, nanoseconds): ``execd ctl status`` shows them to
        people (ISO times, durations), ``--json`` passes them on as they are. Times and
        ages are display only: none of them reaches the ledger.
        """
        daemon = self.daemon
        graph = daemon.graph
        config = daemon.config
        durability = daemon.durability
        live = {venue.venue: venue.status() for venue in daemon.live}
        venues: dict[str, dict[str, Any]] = {}
        for name, plane in config.planes().items():
            # Paper and stub venues answer at once: they are ready as soon as they run.
            state = live.get(name) or {"state": "ready" if graph is not None else "starting"}
            venues[name] = {**state, "plane": plane, "adapter": config.venues[name].adapter_kind}
        backlog = durability.inbox.backlog if durability.inbox is not None else NO_BACKLOG
        oldest, listed = backlog.ages(WallClock().now(), monotonic())
        last = durability.last_outcome
        started = daemon.started
        return {
            "mode": daemon.mode, "stopping": daemon.stopping.is_set(),
            "ready": daemon.supervisor.ready_sent,
            "reloads": dict(self.reloads),
            "planes": config.planes(),
            "queues": graph.queues() if graph is not None else {},
            "ledger": {"last_seq": durability.seq, "last_hash": durability.hash},
            "venues": venues,
            "version": __version__,
            "started_ns": started[0] if started is not None else None,
            "uptime_seconds": monotonic() - started[1] if started is not None else None,
            # Two digests: of the file's bytes (what is on disk was loaded), and of the
            # settings that decide outcomes (what the start and config records carry).
            "config": {"path": str(Path(daemon.loaded.path).absolute()),
                       "file_sha256": daemon.loaded.sha256,
                       "outcome_settings_sha256": settings_sha256(daemon.loaded),
                       "policy": _policy_status(daemon.loaded)},
            "inbox": {"files": backlog.files, "oldest_age_seconds": oldest,
                      "listed_seconds_ago": listed},
            "last_outcome": ({"wall_ns": last[0], "logical_time": last[1]}
                             if last is not None else None),
            "outcomes": dict(durability.by_status),
        }

    # ------------------------------------------------------------------ reload

    async def reload(self, actor: str, reason: str) -> dict[str, Any]:
        """Apply the config file as it is now, all or nothing; the answer for ``execd ctl``.

        Shielded: once begun, a reload runs to its end even if the ``execd ctl``
        that asked for it times out, so the daemon's idea of its config never
        parts from what the sentinel applied.
        """
        with anyio.CancelScope(shield=True):
            answer = await self._reload_now(actor, reason)
        return answer

    async def _reload_now(self, actor: str, reason: str) -> dict[str, Any]:

        daemon = self.daemon
        supervisor = daemon.supervisor
        async with self._reload_lock:
            path = daemon.loaded.path
            if supervisor.ready_sent and not daemon.stopping.is_set():
                daemon.notifier.reloading(f"reloading {path}")
            try:
                changed, seq = await self._apply_reload(actor, reason)
            except ReloadRefused as refused:
                self.reloads["refused"] += 1
                daemon.log.error("config.reload_refused", file=path, operator=actor,
                                 problems=refused.problems)
                more = f" (+{len(refused.problems) - 1} more)" if len(refused.problems) > 1 else ""
                supervisor.reloaded(f"RELOAD REFUSED: {refused.problems[0]}{more}; still on "
                                    f"the previous config; {supervisor.status_line()}")
                return {"ok": False, "error": f"reload refused: {refused}"}
            self.reloads["applied"] += 1
            if changed:
                daemon.log.info("config.reloaded", file=path, operator=actor, changed=changed,
                                ledger_seq=seq)
            else:
                daemon.log.info("config.reload_unchanged", file=path, operator=actor)
            supervisor.reloaded(f"config reloaded ({len(changed)} keys changed); "
                                f"{supervisor.status_line()}")
            return {"ok": True, "command": "reload", "changed": changed, "ledger_seq": seq}

    async def _apply_reload(self, actor: str, reason: str) -> tuple[list[str], int | None]:
        # Imported at the call: execd.app.daemon imports this module.

        daemon = self.daemon
        if daemon.stopping.is_set():
            raise ReloadRefused(["the daemon is stopping"])
        try:
            loaded = await anyio.to_thread.run_sync(config_file.load, daemon.loaded.path)
        except ConfigError as exc:
            raise ReloadRefused([str(p) for p in exc.problems]) from None
        except MemoryError:
            # The files are bounded, so this is the machine, not the file: say so, and
            # keep running on the config in force.
            raise ReloadRefused([f"{daemon.loaded.path}: the config and its policy file could "
                                 "not be checked: out of memory"]) from None
        new = loaded.config
        values = changes(daemon.config, new)
        changed = list(values)
        blocked = needs_restart(changed)
        if blocked:
            raise ReloadRefused([f"{line} (needs a restart; nothing was applied)"
                                 for line in blocked])
        # The policy file's content is part of the config's meaning: its digest changing
        # (the same path, edited) is a change like a key's, recorded as one.
        policies = [_policy_sha256(daemon.loaded), _policy_sha256(loaded)]
        if policies[0] != policies[1]:
            values[POLICY_KEY] = policies
            changed = sorted(values)
        if not changed:
            daemon.loaded = loaded
            return [], None
        # Limits and policies change in the sentinel, between two batches, and the
        # change is recorded: the ledger says which rules decided each outcome.
        request = ControlRequest(Request("reload", reason=reason, actor=actor))
        request.payload = Reconfigure(new, settings_sha256(loaded), loaded.sha256, changed,
                                      values, reason, loaded.policy)
        try:
            await self.to_sentinel.send(request)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            raise ReloadRefused(["the daemon is stopping"]) from None
        await request.done.wait()
        if request.error is not None:
            raise ReloadRefused([request.error])
        await request.durable.wait()
        logs.set_level(new.log.level)
        for venue in daemon.live:
            table = new.venues[venue.venue].ccxt
            assert table is not None
            venue.reconfigure(table)
        daemon.loaded, daemon.config = loaded, new
        seq: int | None = request.result.get("ledger_seq")
        return changed, seq
