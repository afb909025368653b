"""The daemon: start, run, stop.

The start-up order, each step before the next: credentials and the signing key
(config problems stop the start), the signal receiver, the ledger's lock and the
lakehouse's lock, the control socket and the metrics endpoint (a second daemon stops
there without writing anything), recovery, the plane check, the ``start`` record;
then the actor graph (:mod:`execd.app.graph`) runs until the drain, and the ``stop``
record ends the run. Shutdown is a drain: the reader stops between chunks and
closes its stream, and each actor finishes what it holds and closes its own, until
the writer has made everything durable.

The other jobs live beside it: wiring the actors (``graph``), ``execd ctl``
(``commands``), what waits on durability (``durable``), signals and the service
manager (``supervisor``), and what a reload may change (``reload``).
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import SocketListener

from execd import __version__
from execd.app.audit_files import kept, stopped
from execd.app.checkpointer import shadow_fold
from execd.app.commands import Commands
from execd.app.durable import Durability, move_when_durable
from execd.app.graph import Graph, Mode, input_source
from execd.app.supervisor import AFTER_RECOVERY_S, Supervisor
from execd.config.digest import settings_sha256
from execd.config.schema import ConfigError, ConfigProblem, LoadedConfig
from execd.ledger.head import HeadWitness
from execd.ledger.record import LedgerChain
from execd.ledger.recovery import RecoveredState, recover
from execd.ledger.segments import SegmentStore, exclusive
from execd.ledger.snapshot import fold_key
from execd.ledger.writer import Commit, LedgerWriter
from execd.model.clock import Clock, LogicalClock, WallClock, monotonic
from execd.model.errors import LakehouseInUse, LedgerNotEmpty, MetricsUnavailable, UnresolvedOrders
from execd.model.messages import Entry, ReaderItem, StartRecord, StopRecord
from execd.model.progress import PROGRESS
from execd.reader.inbox import NO_BACKLOG, InboxSource, InputSource, StatKey
from execd.sentinel.risk import Risk
from execd.sentinel.signatures import load_key
from execd.service import logs
from execd.service.control import ControlServer, Request
from execd.service.liveness import Liveness, Pulse, heartbeat
from execd.service.notify import Notifier
from execd.venues.ccxt.credentials import Credentials, load_credentials

if TYPE_CHECKING:
    from execd.service.metrics import Metrics, Snapshot
    from execd.venues.ccxt.venue import CcxtVenue


class Daemon:
    """One run of execd over one ledger: ``execd run`` or ``execd replay``."""

    def __init__(
        self,
        loaded: LoadedConfig,
        *,
        mode: Mode = "run",
        inputs: list[Path] | None = None,
        ledger_dir: Path | None = None,
        durable_probe: Callable[[Commit], None] | None = None,
        read_probe: Callable[[list[ReaderItem]], None] | None = None,
        early_signals: list[int] | None = None,
    ) -> None:
        self.loaded = loaded
        self.config = loaded.config
        self.mode = mode
        self.inputs = inputs or []
        self.ledger_dir = ledger_dir or Path(self.config.daemon.ledger_dir)
        self.read_probe = read_probe
        # Stop signals caught before the daemon's own receiver was in place.
        self.early_signals = early_signals if early_signals is not None else []
        self.stopping = anyio.Event()
        self.stop_reason = "input exhausted" if mode == "replay" else "stopped"
        self.log = logs.get("daemon")
        self.state: RecoveredState | None = None
        self.writer: LedgerWriter | None = None
        self.risk: Risk | None = None
        self.credentials: dict[str, Credentials] = {}
        # The service manager (systemd) hears from `execd run` only.
        self.notifier = Notifier(None if mode == "run" else {})
        self.liveness = Liveness()
        # Beaten by recovery's long loops (``_recover``), watched by the supervisor.
        self.recovery = Pulse("recovery")
        self.metrics: Metrics | None = None
        self.durability = Durability(
            self.log, probe=durable_probe,
            outcomes_each=lambda: self.config.log.outcomes == "each", tally=mode == "run")
        # When `execd run` started (wall ns, monotonic s); the loop's pulse for /healthz.
        self.started: tuple[int, float] | None = None
        self.loop_pulse: Pulse | None = None
        self.commands = Commands(self)
        self.supervisor = Supervisor(self)
        # The actors, once the run has recovered and recorded its start.
        self.graph: Graph | None = None

    @property
    def live(self) -> list[CcxtVenue]:
        """The ccxt venues of this run (none before the actors are made)."""
        return self.graph.live if self.graph is not None else []

    # ----------------------------------------------------------------- start-up

    def _recover(self) -> RecoveredState:
        if self.mode == "replay" and any(self.ledger_dir.glob("segment-*.jsonl")):
            raise LedgerNotEmpty(
                f"{self.ledger_dir} already holds a ledger; replay needs a new one")
        ledger = self.config.ledger
        # Its long loops beat this pulse (execd.model.progress), so the supervisor can
        # tell the service manager a long recovery goes on (EXTEND_TIMEOUT_USEC) while
        # it does. Not one of the actors the watchdog judges: it never was.
        pulse = self.recovery
        pulse.busy()
        beating = PROGRESS.set(pulse.busy)
        try:
            state = recover(self.ledger_dir, repair=True, risk=self.risk,
                            fold_key=fold_key(self.config) if ledger.checkpoint_records
                            else None)
        finally:
            PROGRESS.reset(beating)
            pulse.rest()
        _log_recovered(self.log, self.ledger_dir, state, self.risk)
        return state

    def _clock(self, state: RecoveredState) -> Clock:
        if self.config.clock.kind == "wall":
            return WallClock()
        return LogicalClock(state.scan.last_time)

    # ---------------------------------------------------------------- the run

    async def run(self) -> None:
        """Lock the ledger, claim the control socket, then run (see :meth:`_run`).

        Both come before anything is written: a second daemon pointed at the same
        ledger or socket stops without touching the first one's chain.
        """
        config = self.config
        key = load_key(config.risk, self.loaded.path)
        # Credentials are read before anything else: a live venue without them
        # stops the start, with the key that names them.
        self.credentials = {
            name: load_credentials(name, venue.ccxt, self.loaded.path)
            for name, venue in sorted(config.venues.items()) if venue.ccxt is not None}
        if self.credentials and self.mode == "replay":
            raise ConfigError([ConfigProblem(
                self.loaded.path, "venues", "no ccxt venues (replay runs without a venue)",
                f"ccxt venues {sorted(self.credentials)}")])
        self.risk = Risk(config, key=key)
        # SIGTERM and SIGINT are caught from here on; one that arrives during recovery
        # waits in the receiver and starts a drain as soon as the pipeline runs.
        # SIGHUP reloads the config.
        signals = (anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
                   if self.mode == "run" else contextlib.nullcontext(None))
        if self.mode == "run":  # display only (ctl status, a gauge): never recorded
            self.started = (WallClock().now(), monotonic())
        with signals as received, exclusive(self.ledger_dir), self._own_lakehouse():
            if self.early_signals:
                self.supervisor.drain(signal.Signals(self.early_signals[0]).name)
            server: ControlServer | None = None
            listener: SocketListener | None = None
            if self.mode == "run":
                server = ControlServer(config.control, handler=self._command)
                listener = await server.bind()
            try:
                self._serve_metrics()
                async with anyio.create_task_group() as tg:
                    if self.notifier.enabled:
                        tg.start_soon(self.supervisor.supervise)
                    if self.loop_pulse is not None and config.metrics is not None:
                        tg.start_soon(heartbeat, self.loop_pulse,
                                      config.metrics.stuck_after_ms / 4000)
                    audit = kept(tg, self)  # the lakehouse's derived files, for execd run
                    await self._run(server, listener, received)
                    tg.cancel_scope.cancel()
                await stopped(audit, self.log)
            finally:
                if server is not None:
                    server.remove()
                if self.metrics is not None:
                    # Stopping prometheus_client's server takes one poll (0.5 s).
                    with anyio.CancelScope(shield=True):
                        await anyio.to_thread.run_sync(self.metrics.close)
                self.notifier.close()

    def _own_lakehouse(self) -> contextlib.AbstractContextManager[None]:
        """``execd run`` holds the lakehouse's lock, as it holds the ledger's.

        Two daemons with their own ledgers on one lakehouse would each take the other's
        files in work/ for leftovers and execute the same intents twice. Replay reads only
        the files it is given (and the context beside them): it takes no lock.
        """
        if self.mode != "run":
            return contextlib.nullcontext()
        lakehouse = self.config.lakehouse
        if not lakehouse.root.exists():
            self.log.warning("lakehouse.created", path=str(lakehouse.root),
                             note="the configured lakehouse did not exist; check "
                                  "daemon.lakehouse if producers write elsewhere")
        if self.config.risk.require_registered_run and not lakehouse.runs.exists():
            self.log.warning("provenance.registry_missing", path=str(lakehouse.runs),
                             note="every intent is refused PROVENANCE_RUN_UNREGISTERED "
                                  "until the audit registry exists")
        return exclusive(lakehouse.root, LakehouseInUse, "the lakehouse")

    def _serve_metrics(self) -> None:
        listen = self.config.metrics
        if self.mode != "run" or listen is None:
            return
        from execd.service.metrics import Metrics, parse_listen  # imported here: prometheus_client

        metrics = self.metrics = Metrics(venues=self.config.venues)
        metrics.snapshot(self._snapshot)
        self.loop_pulse = Pulse("loop")
        metrics.watch(self.liveness, listen.stuck_after_ms / 1000, self.loop_pulse)
        self.durability.metrics = metrics
        host, port = parse_listen(listen.listen)
        try:
            bound = metrics.serve(host, port, max_clients=listen.max_clients,
                                  client_timeout=listen.client_timeout_ms / 1000)
        except OSError as exc:
            raise MetricsUnavailable(f"metrics.listen {listen.listen}: {exc}") from exc
        self.log.info("metrics.listening", address=f"{bound[0]}:{bound[1]}")

    async def _run(self, server: ControlServer | None, listener: SocketListener | None,
                   signals: AsyncIterator[int] | None) -> None:
        """Recover, record the start, run the actors until drained, record the stop."""
        config = self.config
        self.notifier.status(f"recovering the ledger in {self.ledger_dir}")
        # In a worker thread: a long recovery must not starve the watchdog.
        state = self.state = await anyio.to_thread.run_sync(self._recover)
        # What comes after recovery (venues' markets and reconciliation) gets the unit's
        # usual budget from here, however long recovery took (README, "The unit").
        self.notifier.extend(AFTER_RECOVERY_S)
        self._check_plane_switch(state)
        stranded = sorted({order.venue for order, _ in state.unresolved.values()
                           if order.venue not in self.credentials})
        if stranded:
            raise UnresolvedOrders(
                f"the ledger holds {len(state.unresolved)} live orders without an outcome on "
                f"venues {stranded}, which this config does not serve through ccxt: they "
                f"cannot be reconciled, so nothing will trade (restore those venues' config)")
        store = SegmentStore(self.ledger_dir, config.ledger.segment_bytes)
        store.open()
        chain = LedgerChain(state.scan.next_seq, state.scan.last_hash, state.scan.last_time)
        writer = self.writer = LedgerWriter(
            chain, store,
            commit_records=config.batches.commit_records,
            commits_in_flight=config.queues.commits,
            on_durable=self._durable,
            on_synced=self.metrics.committed if self.metrics is not None else None,
            pulses=(self.liveness.pulse("ledger"), self.liveness.pulse("ledger.sync")),
            witness=HeadWitness(self.ledger_dir, every_s=config.ledger.head_interval_ms / 1000,
                                log_every_s=config.ledger.head_log_ms / 1000,
                                log=logs.get("ledger")),
        )
        clock = self._clock(state)
        planes = config.planes()
        start = writer.write_now("start", clock.now(), StartRecord(
            __version__, self.mode, config.clock.kind, planes, settings_sha256(self.loaded)))
        writer.checkpoints = await shadow_fold(config, self.ledger_dir, state, start, self.stopping)
        durability = self.durability
        durability.seq, durability.hash = chain.next_seq - 1, chain.prev_hash
        # What never changes during a run is said once, here, not bound to every line.
        self.log.info("daemon.started", mode=self.mode, version=__version__,
                      clock=config.clock.kind, seq=durability.seq)
        for venue, plane in planes.items():
            self.log.info("venue.plane", venue=venue, plane=plane, adapter=
                          config.venues[venue].adapter_kind)
        try:
            async with anyio.create_task_group() as tg:
                if signals is not None:
                    tg.start_soon(self.supervisor.signals, signals, tg)
                if server is not None and listener is not None:
                    tg.start_soon(server.serve, listener)
                    self.log.info("control.listening", socket=str(server.path))
                graph = await self._graph(state, clock, writer)
                await graph.run()
                tg.cancel_scope.cancel()
            writer.write_now("stop", chain.last_time, StopRecord(self.stop_reason))
            self.log.info("daemon.stopped", reason=self.stop_reason, last_seq=chain.next_seq - 1,
                          last_hash=chain.prev_hash)
        finally:
            store.close()
            state.close_index()

    async def _graph(self, state: RecoveredState, clock: Clock, writer: LedgerWriter) -> Graph:
        """The actors of this run, over the input source it reads."""
        # The reader's pulse is made here, on the event loop, where the supervisor
        # reads the pulses; the inbox then only finds it.
        self.liveness.pulse("reader")
        # In a worker thread, like the claims: the inbox moves on at once what an
        # earlier run left in work/ (its constructor renames and digests files).
        source, _ = await anyio.to_thread.run_sync(self._source, state)
        assert self.risk is not None
        graph = self.graph = Graph(
            self.config, mode=self.mode, state=state, clock=clock, writer=writer,
            risk=self.risk, source=source, credentials=self.credentials,
            stopping=self.stopping, liveness=self.liveness,
            commands=(self.commands.reader_commands, self.commands.sentinel_commands),
            metrics=self.metrics, read_probe=self.read_probe,
            waiting=self.supervisor.waiting, ready=self.supervisor.ready,
            policy=self.loaded.policy)
        return graph

    def _check_plane_switch(self, state: RecoveredState) -> None:
        """A venue the ledger last started on paper goes live only with confirm_live."""
        problems = [
            ConfigProblem(self.loaded.path, f"venues.{name}.confirm_live",
                          f"true to move venue {name} from the paper plane (ledger record "
                          f"#{state.planes[name][1]}, the last start that named it) to the "
                          "live plane", "it unset")
            for name, plane in self.config.planes().items()
            if plane == "live" and state.planes.get(name, ("", 0))[0] == "paper"
            and not self.config.venues[name].confirm_live]
        if problems:
            raise ConfigError(problems)

    def _source(
        self, state: RecoveredState
    ) -> tuple[InputSource, Callable[[str, int, str], None] | None]:
        """The reader's files, and what hears of each file read to its end.

        Blocking for ``execd run`` (see :func:`execd.app.graph.input_source`). The
        inbox is where the durable input_file records' MoveFile actions go.
        """
        source = input_source(self.config, self.mode, self.inputs, state, self.stopping,
                              self.liveness)
        if not isinstance(source, InboxSource):
            return source, None
        self.durability.inbox = source
        return source, source.finished

    # ------------------------------------------------------------ the rooms' hooks

    def _file_entry(self, entry: Entry, key: StatKey | None) -> None:
        """The reader made an input_file record: the inbox moves its file once it is durable."""
        move_when_durable(entry, key)

    def _durable(self, commit: Commit) -> None:
        """The writer's after-fsync hook (see :class:`execd.app.durable.Durability`)."""
        self.durability.durable(commit)

    async def _command(self, req: Request) -> dict[str, Any]:
        """The control socket's handler (see :class:`execd.app.commands.Commands`)."""
        return await self.commands.command(req)

    def _snapshot(self) -> Snapshot:
        """The gauges, read by the metrics endpoint's thread at scrape time (snapshot())."""
        return snapshot(self)


def _log_recovered(log: Any, ledger: Path, state: RecoveredState, risk: Risk | None) -> None:
    """What recovery found, for the operator: a missing head witness, snapshots not
    used, indexes rebuilt, a torn tail mended, then what was recovered."""
    if state.head_missing:
        log.warning("ledger.head_missing", ledger=str(ledger),
                    note="no head.json beside the ledger: a cut end cannot be told this "
                         "time; check with `execd ledger verify --expect S:H` against the "
                         "last ledger.head logged")
    for name, reason in state.ignored:
        log.warning("checkpoint.ignored", snapshot=name, reason=reason,
                    note="an older checkpoint, or the full fold, is used instead")
    _log_rebuilt(log, state)
    torn = state.scan.torn
    if torn is not None:
        log.warning("ledger.torn_tail_repaired", segment=torn.segment, offset=torn.offset,
                    bytes_dropped=torn.length, problem=torn.problem)
    log.info("ledger.recovered", records=state.scan.records,
             next_seq=state.scan.next_seq, logical_time=state.scan.last_time,
             known_intents=len(state.seen), unfinished_files=len(state.progress),
             checkpoint=state.checkpoint, folded=state.folded)
    if risk is not None:
        log.info("risk.recovered", trading_state=risk.state,
                 open_positions=len(risk.book.open_positions()))


def _log_rebuilt(log: Any, state: RecoveredState) -> None:
    """An index.rebuilt warning for each rebuild of the id index at start-up, and a
    file_index.rebuilt one for each of the consumed-file tables'."""
    for rebuilt in state.index.rebuilt if state.index is not None else ():
        log.warning("index.rebuilt", **rebuilt.fields())
    for files in state.file_index.rebuilt if state.file_index is not None else ():
        log.warning("file_index.rebuilt", **files.fields())


def snapshot(daemon: Daemon) -> Snapshot:
    """The gauges, read by the metrics endpoint's thread at scrape time.

    Plain attribute reads only (it runs in another thread); the ages read the wall
    clock, for display only.
    """
    from execd.service.metrics import Snapshot

    graph, durability, started = daemon.graph, daemon.durability, daemon.started
    backlog = durability.inbox.backlog if durability.inbox is not None else NO_BACKLOG
    last = durability.last_outcome
    return Snapshot(
        queues=graph.queues() if graph is not None else {},
        trading_state=daemon.risk.state if daemon.risk is not None else "ACTIVE",
        venues={venue.venue: venue.state for venue in daemon.live},
        ready=daemon.supervisor.ready_sent, draining=daemon.stopping.is_set(),
        ledger_last_seq=durability.seq, reloads=daemon.commands.reloads["applied"],
        reloads_refused=daemon.commands.reloads["refused"],
        queue_capacity=graph.capacities() if graph is not None else {},
        inbox_files=backlog.files, inbox_oldest_age=backlog.ages(WallClock().now(), 0)[0],
        last_outcome_time=last[0] / 1e9 if last is not None else None,
        start_time=started[0] / 1e9 if started is not None else None,
        drift=_drift(daemon))


def _drift(daemon: Daemon) -> dict[tuple[str, str], float]:
    """Every (venue, asset) compared so far: how far outside the ledger it is (0: inside)."""
    if daemon.risk is None:
        return {}
    state = daemon.risk.drift
    drifting = dict(state.drifting)  # copies: the event loop may change them meanwhile
    return {key: float(drifting.get(key, 0)) for key in [*state.baselines, *drifting]}
