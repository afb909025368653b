"""The daemon: recovers the ledger, wires the actors together and runs them.

::

    Reader ──▶ Sentinel ──▶ Router ──▶ Adapter[venue] ──▶ Ledger writer
                                  └──────── outcomes ──────▶

Every arrow is a bounded anyio memory stream carrying batches (a list per
message); capacities come from ``[queues]``. Shutdown is a drain: the reader stops
between chunks and closes its stream, and each actor finishes what it holds and
closes its own, until the writer has made everything durable.
"""

from __future__ import annotations

import contextlib
import hashlib
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import anyio
import msgspec
from anyio.abc import ObjectSendStream, SocketListener, TaskGroup
from anyio.streams.memory import MemoryObjectSendStream

from execd import __version__
from execd.app.reload import changes, needs_restart
from execd.config import schema as config_file
from execd.config.schema import Config, ConfigError, ConfigProblem, LoadedConfig
from execd.ledger.head import HeadWitness
from execd.ledger.record import LedgerChain
from execd.ledger.recovery import RecoveredState, recover
from execd.ledger.segments import SegmentStore, exclusive
from execd.ledger.writer import Commit, LedgerWriter
from execd.model.clock import Clock, LogicalClock, WallClock
from execd.model.messages import (
    Accepted,
    Entry,
    ExecutionOutcome,
    IntentIn,
    ReaderItem,
    RouterItem,
    Settled,
    StartRecord,
    StopRecord,
    encode,
)
from execd.reader.context import ContextLoader
from execd.reader.inbox import InboxSource, InputSource, LakehouseInUse, ListSource, StatKey
from execd.reader.shell import LakehouseReader, ReaderCore
from execd.router import RouterCore, run_router
from execd.sentinel.core import Reconfigure, SentinelCore
from execd.sentinel.risk import Risk
from execd.sentinel.shell import run_sentinel, run_settlements
from execd.sentinel.signatures import load_key
from execd.service import logs
from execd.service.control import ControlRequest, ControlServer, Request
from execd.service.liveness import Liveness
from execd.service.notify import Notifier, watchdog_seconds
from execd.venues import Adapter, run_adapter
from execd.venues.ccxt.credentials import Credentials, load_credentials
from execd.venues.paper import PaperAdapter
from execd.venues.stub import StubAdapter

if TYPE_CHECKING:
    from execd.service.metrics import Metrics, Snapshot
    from execd.venues.ccxt.venue import CcxtVenue

Mode = Literal["run", "replay"]
# Operator commands waiting for their actor; a full queue makes `execd ctl` wait.
COMMAND_QUEUE = 8
# How often STATUS= is refreshed for `systemctl status` (without a watchdog).
STATUS_SECONDS = 5.0


class LedgerNotEmpty(Exception):
    """``execd replay`` writes a new ledger and refuses to append to an existing one."""


class UnresolvedOrders(Exception):
    """The ledger holds live orders without an outcome that this config cannot resolve."""


class MetricsUnavailable(Exception):
    """The metrics endpoint could not be bound."""


class _Refused(Exception):
    """A reload that cannot be applied; ``problems`` says why, one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


_UNSET_LATER = (("ccxt", None), ("confirm_live", False))


def outcome_settings_sha256(config: Config) -> str:
    """Digest of the settings that decide outcomes (venues, limits, clock, input, governance).

    Queue sizes, batch sizes, paths and logging are left out on purpose: they must
    not change a single byte of the ledger, and a replay with other sizes proves it.
    """
    gov = config.governance
    # Keys added since the first release digest as before while unset, so a config
    # that does not use them keeps its digest (and its paper ledgers their bytes).
    venues = {name: {k: v for k, v in msgspec.structs.asdict(venue).items()
                     if (k, v) not in _UNSET_LATER}
              for name, venue in config.venues.items()}
    settings = {"venues": venues, "clock": config.clock, "input": config.input,
                "risk": config.risk, "governance": [gov.enforce, gov.require_plan]}
    return hashlib.sha256(encode(settings)).hexdigest()


def make_adapters(config: Config) -> tuple[list[Adapter], dict[str, int]]:
    """One adapter per venue without I/O, in venue-name order, and the venue -> index map.

    Venues served through ccxt are made by the daemon (they need its clock and hooks).
    """
    adapters: list[Adapter] = []
    index: dict[str, int] = {}
    for name in sorted(config.venues):
        venue = config.venues[name]
        adapter: Adapter
        if venue.adapter_kind == "ccxt":
            continue
        if venue.adapter_kind == "paper":
            adapter = PaperAdapter(name)
        else:
            adapter = StubAdapter(name, venue.stub_result, venue.stub_reason)
        index[name] = len(adapters)
        adapters.append(adapter)
    return adapters, index


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
        self.durable_probe = durable_probe
        self.read_probe = read_probe
        # Stop signals caught before the daemon's own receiver was in place.
        self.early_signals = early_signals if early_signals is not None else []
        self.stopping = anyio.Event()
        self.stop_reason = "input exhausted" if mode == "replay" else "stopped"
        self.log = logs.get("daemon", mode=mode)
        self.state: RecoveredState | None = None
        self.writer: LedgerWriter | None = None
        self.risk: Risk | None = None
        # The inbox of `execd run` (replay reads a list of files and moves none).
        self.inbox: InboxSource | None = None
        # Operator commands, to the actor that carries each out.
        self._to_reader, self._reader_commands = anyio.create_memory_object_stream[
            ControlRequest](COMMAND_QUEUE)
        self._to_sentinel, self._sentinel_commands = anyio.create_memory_object_stream[
            ControlRequest](COMMAND_QUEUE)
        # id(entry) -> (entry, what to do once it is durable, given its ledger seq):
        # records an operator waits for, and input_file records whose file then moves.
        # Matched by identity: a record's ingest seq can still move as the sentinel
        # numbers records of its own before it.
        self._watched: dict[int, tuple[Entry, Callable[[int], None]]] = {}
        self._streams: dict[str, MemoryObjectSendStream[Any]] = {}
        self.credentials: dict[str, Credentials] = {}
        self.live: list[CcxtVenue] = []
        self._settlements: MemoryObjectSendStream[Settled] | None = None
        self.durable_seq = -1
        self.durable_hash = ""
        # The service manager (systemd) hears from `execd run` only.
        self.notifier = Notifier(None if mode == "run" else {})
        self.liveness = Liveness()
        self.ready_sent = False
        self.metrics: Metrics | None = None
        self.reloads = {"applied": 0, "refused": 0}
        self._reload_lock = anyio.Lock()

    # ----------------------------------------------------------------- start-up

    def _recover(self) -> RecoveredState:
        if self.mode == "replay" and any(self.ledger_dir.glob("segment-*.jsonl")):
            raise LedgerNotEmpty(
                f"{self.ledger_dir} already holds a ledger; replay needs a new one")
        state = recover(self.ledger_dir, repair=True, risk=self.risk)
        if state.head_missing:
            self.log.warning("ledger.head_missing", ledger=str(self.ledger_dir),
                             note="no head.json beside the ledger: a cut end cannot be told "
                                  "this time; check with `execd ledger verify --expect S:H` "
                                  "against the last ledger.head logged")
        torn = state.scan.torn
        if torn is not None:
            self.log.warning("ledger.torn_tail_repaired", segment=torn.segment, offset=torn.offset,
                             bytes_dropped=torn.length, problem=torn.problem)
        self.log.info("ledger.recovered", records=state.scan.records,
                      next_seq=state.scan.next_seq, logical_time=state.scan.last_time,
                      known_intents=len(state.seen), unfinished_files=len(state.progress))
        if self.risk is not None:
            self.log.info("risk.recovered", trading_state=self.risk.state,
                          open_positions=len(self.risk.book.open_positions()))
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
        with signals as received, exclusive(self.ledger_dir), self._own_lakehouse():
            if self.early_signals:
                self._drain(signal.Signals(self.early_signals[0]).name)
            server: ControlServer | None = None
            listener: SocketListener | None = None
            if self.mode == "run":
                server = ControlServer(config.control, handler=self._command)
                listener = await server.bind()
            try:
                self._serve_metrics()
                async with anyio.create_task_group() as tg:
                    if self.notifier.enabled:
                        tg.start_soon(self._supervise)
                    await self._run(server, listener, received)
                    tg.cancel_scope.cancel()
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
        files in work/ for leftovers and execute the same intents twice. Replay reads
        only the files it is given (and the context beside them), so it takes no lock.
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
        writer.write_now("start", clock.now(), StartRecord(
            __version__, self.mode, config.clock.kind, planes, outcome_settings_sha256(config)))
        self.durable_seq, self.durable_hash = chain.next_seq - 1, chain.prev_hash
        for venue, plane in planes.items():
            self.log.info("venue.plane", venue=venue, plane=plane, adapter=
                          config.venues[venue].adapter_kind)
        try:
            async with anyio.create_task_group() as tg:
                if signals is not None:
                    tg.start_soon(self._signals, signals, tg)
                if server is not None and listener is not None:
                    tg.start_soon(server.serve, listener)
                    self.log.info("control.listening", socket=str(server.path))
                await self._pipeline(state, clock, writer)
                tg.cancel_scope.cancel()
            writer.write_now("stop", chain.last_time, StopRecord(self.stop_reason))
            self.log.info("daemon.stopped", reason=self.stop_reason, last_seq=chain.next_seq - 1,
                          last_hash=chain.prev_hash)
        finally:
            store.close()

    def _probe(self) -> Callable[[list[ReaderItem]], None] | None:
        """What sees each batch the reader sends: the metrics' intent count, a test's probe."""
        metrics, outer = self.metrics, self.read_probe
        if metrics is None:
            return outer

        def probe(batch: list[ReaderItem]) -> None:
            metrics.ingested(sum(1 for item in batch if type(item) is IntentIn))
            if outer is not None:
                outer(batch)

        return probe

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
        if self.mode == "replay":
            return ListSource(self.inputs), None
        config = self.config
        inbox = self.inbox = InboxSource(
            config.lakehouse,
            progress=state.progress, done=state.done, refusing=state.refusing,
            rejected=state.rejected, changed=state.changed,
            poll_seconds=config.daemon.poll_interval_ms / 1000,
            settle_seconds=config.daemon.settle_ms / 1000, finished_files=config.queues.files,
            time=state.scan.last_time, watch=self._watch, stopping=self.stopping,
            log=logs.get("reader"),
            pulse=self.liveness.pulse("reader"),
        )
        return inbox, inbox.finished

    async def _pipeline(self, state: RecoveredState, clock: Clock, writer: LedgerWriter) -> None:
        config = self.config
        queues = config.queues
        adapters, index = make_adapters(config)
        source, on_finished = self._source(state)
        reader = LakehouseReader(
            ReaderCore(clock, 0, config.input.max_line_bytes), source,
            chunk_bytes=config.batches.read_chunk_bytes, batch_items=config.batches.items,
            stopping=self.stopping, on_finished=on_finished, probe=self._probe(),
            on_file_entry=self._file_entry if self.inbox is not None else None,
            file_slots=self.inbox.slots if self.inbox is not None else None,
            context=ContextLoader(
                config.lakehouse,
                Path(config.governance.ledger_dir) if config.governance.enforce else None,
                config.risk.crisis_regimes, max_bytes=config.input.max_context_bytes),
            pulse=self.liveness.pulse("reader"),
        )
        assert self.risk is not None
        sentinel = SentinelCore(config.planes(), state.seen, self.risk)
        # What `execd ctl status` shows before the first batch: the recovered time.
        sentinel.time = clock.now()
        live = self.live = self._live_venues(state)
        for venue in live:
            index[venue.venue] = len(adapters) + live.index(venue)
        router = RouterCore(index, len(adapters) + len(live))

        to_sentinel, sentinel_in = anyio.create_memory_object_stream[list[ReaderItem]](
            queues.sentinel)
        to_router, router_in = anyio.create_memory_object_stream[list[RouterItem]](queues.router)
        to_ledger, ledger_in = anyio.create_memory_object_stream[list[Entry]](queues.ledger)
        # Settlements of live orders, to the sentinel. Each is one outcome, and the
        # writer's hook sends at most one commit's worth between two fsyncs, while
        # the sentinel takes them as they come: a commit's size bounds the buffer.
        settle_send, settle_receive = anyio.create_memory_object_stream[Settled](
            config.batches.commit_records + sum(v.table.max_in_flight + v.table.backlog
                                                for v in live) + len(state.unresolved))
        self._settlements = settle_send
        self._streams = {"sentinel": to_sentinel, "router": to_router, "ledger": to_ledger}
        adapter_sends: list[ObjectSendStream[list[Accepted]]] = []
        commands = self.mode == "run"
        async def write() -> None:
            # Settlements follow durability, so they end when the writer does.
            with settle_send:
                await writer.run(ledger_in)

        async with anyio.create_task_group() as tg:
            tg.start_soon(write)
            pulse = self.liveness.pulse
            tg.start_soon(run_settlements, sentinel, settle_receive, pulse("settlements"))
            for adapter in adapters:
                send, receive = anyio.create_memory_object_stream[list[Accepted]](queues.adapter)
                adapter_sends.append(send)
                self._streams[f"adapter.{adapter.venue}"] = send
                tg.start_soon(run_adapter, adapter, receive, to_ledger.clone(),
                              pulse(f"adapter.{adapter.venue}"))
            for venue in live:
                send, receive = anyio.create_memory_object_stream[list[Accepted]](queues.adapter)
                adapter_sends.append(send)
                self._streams[f"adapter.{venue.venue}"] = send
                tg.start_soon(venue.run, receive, to_ledger.clone(),
                              pulse(f"venue.{venue.venue}"))
            tg.start_soon(run_router, router, router_in, adapter_sends, to_ledger,
                          pulse("router"))
            tg.start_soon(run_sentinel, sentinel, sentinel_in, to_router,
                          self._sentinel_commands if commands else None, self._expect,
                          pulse("sentinel"))
            if self.inbox is not None:
                tg.start_soon(self.inbox.run_disposals, to_ledger.clone())
            tg.start_soon(self._read, reader, to_sentinel, commands)

    async def _read(self, reader: LakehouseReader, send: ObjectSendStream[list[ReaderItem]],
                    commands: bool) -> None:
        """Run the reader once every live venue is ready (markets loaded, orders reconciled).

        Until then no intent is read: fail closed. A stop meanwhile still closes the
        reader's stream, which drains the pipeline.
        """
        if self.live:
            for venue in self.live:
                self.log.info("daemon.waiting_for_venue", venue=venue.venue, state=venue.state)
            self.notifier.status(self._status_line())
            async with anyio.create_task_group() as tg:
                async def all_ready() -> None:
                    for venue in self.live:
                        await venue.ready.wait()
                    tg.cancel_scope.cancel()

                async def stopped() -> None:
                    await self.stopping.wait()
                    tg.cancel_scope.cancel()

                tg.start_soon(all_ready)
                tg.start_soon(stopped)
        if self.mode == "run" and not self.stopping.is_set():
            self.ready_sent = True
            self.log.info("daemon.ready", planes=self.config.planes())
            self.notifier.ready(self._status_line())
        try:
            await reader.run(send, self._reader_commands if commands else None, self._expect)
        finally:
            if self.inbox is not None:
                self.inbox.reading_done()

    def _live_venues(self, state: RecoveredState) -> list[CcxtVenue]:
        """One ccxt venue per live venue that has credentials, with its unresolved orders."""
        if not self.credentials:
            return []
        from execd.venues.ccxt.venue import CcxtVenue  # imported here: ccxt is heavy

        venues = []
        for name, credentials in self.credentials.items():
            table = self.config.venues[name].ccxt
            assert table is not None
            unresolved = [(order, time) for order, time in state.unresolved.values()
                          if order.venue == name]
            # Its own wall clock: live records add wall-clock times, while their
            # logical time is always their intent's (never read from ``clock``).
            venues.append(CcxtVenue(
                name, table, credentials, WallClock(), watch=self._watch, settle=self._settle,
                stopping=self.stopping, unresolved=unresolved,
                attempts={order.client_order_id: state.last_sends[order.client_order_id]
                          for order, _ in unresolved
                          if order.client_order_id in state.last_sends},
                on_call=self.metrics.venue_call if self.metrics is not None else None))
        return venues

    def _watch(self, entry: Entry, then: Callable[[int], None]) -> None:
        """Call ``then`` with ``entry``'s ledger seq once it is durable."""
        self._watched[id(entry)] = (entry, then)

    def _settle(self, settled: Settled) -> None:
        assert self._settlements is not None
        try:
            self._settlements.send_nowait(settled)
        except (anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            # Never expected (see the buffer's size). The sentinel then keeps the order
            # pending, which overstates exposure: it refuses more, never less.
            self.log.error("risk.settlement_dropped", venue=settled.venue,
                           symbol=settled.symbol, error=type(exc).__name__)

    async def _signals(self, signals: AsyncIterator[int], tg: TaskGroup) -> None:
        async for signum in signals:
            name = signal.Signals(signum).name
            if signum == signal.SIGHUP:
                # Its own task: a SIGTERM during a reload still starts the drain at once.
                tg.start_soon(self._reload, "SIGHUP", "signal SIGHUP")
                continue
            if self.stopping.is_set():
                self.log.warning("daemon.already_draining", signal=name)
                continue
            self._drain(name)

    def _drain(self, name: str) -> None:
        """Begin the drain that a stop signal asks for."""
        self.stop_reason = f"signal {name}"
        self.log.info("daemon.draining", signal=name)
        self.stopping.set()
        self.notifier.stopping(f"draining after {name}: finishing what is in flight")

    # ------------------------------------------------------------ service manager

    def _status_line(self) -> str:
        """One line for ``systemctl status``: what the daemon is doing now."""
        risk = self.risk
        trading = f"trading {risk.state}" if risk is not None else ""
        venues = ", ".join(f"{v.venue} {v.state}" for v in self.live)
        if self.stopping.is_set():
            head = "draining"
        elif not self.ready_sent:
            head = f"waiting for venues ({venues})" if self.live else "starting"
            venues = ""
        else:
            head = "running"
        parts = [head, trading, f"ledger seq {self.durable_seq}"]
        if venues:
            parts.append(f"live: {venues}")
        return "; ".join(p for p in parts if p)

    async def _supervise(self) -> None:
        """WATCHDOG=1 while every actor makes progress; STATUS= kept current.

        The ping period is a third of the manager's watchdog time, and an actor
        counts as stuck after half of it, so one stuck actor stops the pings well
        before the manager gives up on the whole daemon.
        """
        period = watchdog_seconds()
        tick = period / 3 if period is not None else STATUS_SECONDS
        withheld: dict[str, float] = {}
        log = logs.get("supervisor")
        while True:
            status = self._status_line()
            if period is not None:
                stuck = self.liveness.stuck(anyio.current_time(), period / 2)
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

    # ------------------------------------------------------------ reload

    def _reloaded(self, status: str) -> None:
        """End a reload for the service manager: READY=1 only if start-up had finished
        and no drain began (a reload must not complete a start job, or undo STOPPING=1)."""
        if self.ready_sent and not self.stopping.is_set():
            self.notifier.ready(status)
        else:
            self.notifier.status(status)

    async def _reload(self, actor: str, reason: str) -> dict[str, Any]:
        """Apply the config file as it is now, all or nothing; the answer for ``execd ctl``.

        Shielded: once begun, a reload runs to its end even if the ``execd ctl``
        that asked for it times out, so the daemon's idea of its config never
        parts from what the sentinel applied.
        """
        with anyio.CancelScope(shield=True):
            answer = await self._reload_now(actor, reason)
        return answer

    async def _reload_now(self, actor: str, reason: str) -> dict[str, Any]:
        async with self._reload_lock:
            path = self.loaded.path
            if self.ready_sent and not self.stopping.is_set():
                self.notifier.reloading(f"reloading {path}")
            try:
                changed, seq = await self._apply_reload(actor, reason)
            except _Refused as refused:
                self.reloads["refused"] += 1
                self.log.error("config.reload_refused", file=path, actor=actor,
                               problems=refused.problems)
                more = f" (+{len(refused.problems) - 1} more)" if len(refused.problems) > 1 else ""
                self._reloaded(f"RELOAD REFUSED: {refused.problems[0]}{more}; still on the "
                               f"previous config; {self._status_line()}")
                return {"ok": False, "error": f"reload refused: {refused}"}
            self.reloads["applied"] += 1
            if changed:
                self.log.info("config.reloaded", file=path, actor=actor, changed=changed,
                              ledger_seq=seq)
            else:
                self.log.info("config.reload_unchanged", file=path, actor=actor)
            self._reloaded(f"config reloaded ({len(changed)} keys changed); "
                           f"{self._status_line()}")
            return {"ok": True, "command": "reload", "changed": changed, "ledger_seq": seq}

    async def _apply_reload(self, actor: str, reason: str) -> tuple[list[str], int | None]:
        if self.stopping.is_set():
            raise _Refused(["the daemon is stopping"])
        try:
            loaded = await anyio.to_thread.run_sync(config_file.load, self.loaded.path)
        except ConfigError as exc:
            raise _Refused([str(p) for p in exc.problems]) from None
        new = loaded.config
        values = changes(self.config, new)
        changed = list(values)
        blocked = needs_restart(changed)
        if blocked:
            raise _Refused([f"{line} (needs a restart; nothing was applied)" for line in blocked])
        if not changed:
            self.loaded = loaded
            return [], None
        # Limits and policies change in the sentinel, between two batches, and the
        # change is recorded: the ledger says which rules decided each outcome.
        request = ControlRequest(Request("reload", reason=reason, actor=actor))
        request.payload = Reconfigure(new, outcome_settings_sha256(new), loaded.sha256, changed,
                                      values, reason)
        try:
            await self._to_sentinel.send(request)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            raise _Refused(["the daemon is stopping"]) from None
        await request.done.wait()
        if request.error is not None:
            raise _Refused([request.error])
        await request.durable.wait()
        logs.set_level(new.log.level)
        for venue in self.live:
            table = new.venues[venue.venue].ccxt
            assert table is not None
            venue.reconfigure(table)
        self.loaded, self.config = loaded, new
        seq: int | None = request.result.get("ledger_seq")
        return changed, seq

    # ------------------------------------------------------------ control

    async def _command(self, req: Request) -> dict[str, Any]:
        """Carry out one ``execd ctl`` command; answer once its records are durable."""
        if req.command == "reload":
            return await self._reload(req.actor or "", req.reason or "")
        request = ControlRequest(req)
        stream = self._to_reader if req.command == "tick" else self._to_sentinel
        try:
            await stream.send(request)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            return {"ok": False, "error": "the daemon is stopping"}
        await request.done.wait()
        if request.error is not None:
            self.log.warning("control.refused", command=req.command, actor=req.actor,
                             error=request.error)
            return {"ok": False, "error": request.error}
        if request.entries:
            await request.durable.wait()
        reply: dict[str, Any] = {"ok": True, "command": req.command, **request.result}
        if req.command == "status":
            reply.update(self._status())
        else:
            self.log.info("control.done", command=req.command, actor=req.actor,
                          reason=req.reason, **request.result)
        return reply

    def _snapshot(self) -> Snapshot:
        """The gauges, read by the metrics endpoint's thread at scrape time."""
        from execd.service.metrics import Snapshot

        return Snapshot(
            queues={name: stream.statistics().current_buffer_used
                    for name, stream in list(self._streams.items())},
            trading_state=self.risk.state if self.risk is not None else "ACTIVE",
            venues={venue.venue: venue.state for venue in self.live},
            ready=self.ready_sent, draining=self.stopping.is_set(),
            ledger_last_seq=self.durable_seq, reloads=self.reloads["applied"],
            reloads_refused=self.reloads["refused"],
            queue_capacity={name: int(stream.statistics().max_buffer_size)
                            for name, stream in list(self._streams.items())})

    def _status(self) -> dict[str, Any]:
        return {
            "mode": self.mode, "stopping": self.stopping.is_set(), "ready": self.ready_sent,
            "reloads": dict(self.reloads),
            "planes": self.config.planes(),
            "queues": {name: stream.statistics().current_buffer_used
                       for name, stream in self._streams.items()},
            "ledger": {"last_seq": self.durable_seq, "last_hash": self.durable_hash},
            "venues": {venue.venue: venue.status() for venue in self.live},
        }

    def _expect(self, request: ControlRequest) -> None:
        """Wait for ``request``'s records to be durable (called before they are sent)."""
        request.undurable = len(request.entries)

        def done(seq: int) -> None:
            request.result["ledger_seq"] = seq
            request.undurable -= 1
            if not request.undurable:
                request.durable.set()

        for entry in request.entries:
            self._watch(entry, done)

    def _file_entry(self, entry: Entry, key: StatKey | None) -> None:
        """The reader made an input_file record: the inbox moves its file once it is durable."""
        inbox = self.inbox
        assert inbox is not None
        self._watch(entry, lambda seq: inbox.record_durable(entry, key))

    def _fire(self, commit: Commit) -> None:
        """Run what waits on the entries of ``commit`` (only while something waits)."""
        seq = commit.last_seq - len(commit.entries)
        for entry in commit.entries:
            seq += 1
            hit = self._watched.pop(id(entry), None)
            if hit is not None:
                hit[1](seq)

    # ------------------------------------------------------------ after fsync

    def _durable(self, commit: Commit) -> None:
        self.durable_seq, self.durable_hash = commit.last_seq, commit.last_hash
        if self._watched:
            self._fire(commit)
        if self.durable_probe is not None:
            self.durable_probe(commit)
        entries = commit.entries
        metrics = self.metrics
        each = self.config.log.outcomes == "each"
        if not each:
            self.log.info("ledger.commit", records=len(entries), last_seq=commit.last_seq)
            if metrics is None:
                return
        seq = commit.last_seq - len(entries)
        for entry in entries:
            seq += 1
            body = entry.body
            if type(body) is ExecutionOutcome:
                if each:
                    # Bad input is a producer's problem someone must look at: a warning.
                    log = self.log.warning if body.status == "QUARANTINED" else self.log.info
                    log("outcome", seq=seq, intent_id=str(body.intent_id),
                        venue=body.venue, plane=body.plane, status=body.status,
                        reason=body.reason, detail=body.detail,
                        filled=str(body.filled_quantity))
                if metrics is not None:
                    metrics.outcome(body.status, body.reason, body.venue or "",
                                    body.plane or "")
