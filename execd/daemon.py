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
import os
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import anyio
import msgspec
from anyio.abc import ObjectSendStream, SocketListener
from anyio.streams.memory import MemoryObjectSendStream

from execd import __version__, logs
from execd.clock import Clock, LogicalClock, WallClock
from execd.config import Config, ConfigError, ConfigProblem, LoadedConfig
from execd.context import ContextLoader
from execd.control import ControlRequest, ControlServer, Request
from execd.inbox import InboxSource, InputSource, ListSource
from execd.ledger.record import LedgerChain
from execd.ledger.segments import SegmentStore, exclusive
from execd.ledger.writer import Commit, LedgerWriter
from execd.messages import (
    Accepted,
    Entry,
    ExecutionOutcome,
    InputFileRecord,
    ReaderItem,
    RouterItem,
    Settled,
    StartRecord,
    StopRecord,
    encode,
)
from execd.reader import LakehouseReader, ReaderCore
from execd.recovery import RecoveredState, recover
from execd.risk import Risk
from execd.router import RouterCore, run_router
from execd.sentinel import SentinelCore, run_sentinel, run_settlements
from execd.signatures import load_key
from execd.venues import Adapter, run_adapter
from execd.venues.credentials import Credentials, load_credentials
from execd.venues.paper import PaperAdapter
from execd.venues.stub import StubAdapter

if TYPE_CHECKING:
    from execd.venues.ccxt_venue import CcxtVenue

Mode = Literal["run", "replay"]
# Operator commands waiting for their actor; a full queue makes `execd ctl` wait.
COMMAND_QUEUE = 8


class LedgerNotEmpty(Exception):
    """``execd replay`` writes a new ledger and refuses to append to an existing one."""


class UnresolvedOrders(Exception):
    """The ledger holds live orders without an outcome that this config cannot resolve."""


def outcome_settings_sha256(config: Config) -> str:
    """Digest of the settings that decide outcomes (venues, limits, clock, input, governance).

    Queue sizes, batch sizes, paths and logging are left out on purpose: they must
    not change a single byte of the ledger, and a replay with other sizes proves it.
    """
    gov = config.governance
    # A venue without a ccxt table digests as it did before that table existed.
    venues = {name: {k: v for k, v in msgspec.structs.asdict(venue).items()
                     if not (k == "ccxt" and v is None)}
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
    ) -> None:
        self.loaded = loaded
        self.config = loaded.config
        self.mode = mode
        self.inputs = inputs or []
        self.ledger_dir = ledger_dir or Path(self.config.daemon.ledger_dir)
        self.durable_probe = durable_probe
        self.read_probe = read_probe
        self.stopping = anyio.Event()
        self.stop_reason = "input exhausted" if mode == "replay" else "stopped"
        self.log = logs.get("daemon", mode=mode)
        self.state: RecoveredState | None = None
        self.writer: LedgerWriter | None = None
        self.risk: Risk | None = None
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

    # ----------------------------------------------------------------- start-up

    def _recover(self) -> RecoveredState:
        if self.mode == "replay" and any(self.ledger_dir.glob("segment-*.jsonl")):
            raise LedgerNotEmpty(
                f"{self.ledger_dir} already holds a ledger; replay needs a new one")
        state = recover(self.ledger_dir, repair=True, risk=self.risk)
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
        signals = (anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT)
                   if self.mode == "run" else contextlib.nullcontext(None))
        with signals as received, exclusive(self.ledger_dir):
            server: ControlServer | None = None
            listener: SocketListener | None = None
            if self.mode == "run":
                control = config.control
                server = ControlServer(
                    Path(control.socket), group_access=control.group_access,
                    timeout=control.timeout_ms / 1000, handler=self._command)
                listener = await server.bind()
            try:
                await self._run(server, listener, received)
            finally:
                if server is not None:
                    server.remove()

    async def _run(self, server: ControlServer | None, listener: SocketListener | None,
                   signals: AsyncIterator[int] | None) -> None:
        """Recover, record the start, run the actors until drained, record the stop."""
        config = self.config
        state = self.state = self._recover()
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
        )
        clock = self._clock(state)
        planes = config.planes()
        writer.write_now("start", clock.now(), StartRecord(
            __version__, self.mode, config.clock.kind, planes, outcome_settings_sha256(config)))
        self.durable_seq, self.durable_hash = chain.next_seq - 1, chain.prev_hash
        for venue, plane in planes.items():
            self.log.info("venue.plane", venue=venue, plane=plane)
        try:
            async with anyio.create_task_group() as tg:
                if signals is not None:
                    tg.start_soon(self._signals, signals)
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

    def _source(
        self, state: RecoveredState
    ) -> tuple[InputSource, Callable[[str, int, str], None] | None]:
        if self.mode == "replay":
            return ListSource(self.inputs), None
        config = self.config
        inbox = InboxSource(
            config.lakehouse,
            progress=state.progress, done=state.done, refusing=state.refusing,
            rejected=state.rejected, poll_seconds=config.daemon.poll_interval_ms / 1000,
            stopping=self.stopping, log=logs.get("reader"),
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
            stopping=self.stopping, on_finished=on_finished, probe=self.read_probe,
            on_file_entry=self._file_entry if self.mode == "run" else None,
            context=ContextLoader(
                config.lakehouse,
                Path(config.governance.ledger_dir) if config.governance.enforce else None,
                config.risk.crisis_regimes),
        )
        assert self.risk is not None
        sentinel = SentinelCore(config.planes(), state.seen, self.risk)
        live = self.live = self._live_venues(state, clock)
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
            tg.start_soon(run_settlements, sentinel, settle_receive)
            for adapter in adapters:
                send, receive = anyio.create_memory_object_stream[list[Accepted]](queues.adapter)
                adapter_sends.append(send)
                self._streams[f"adapter.{adapter.venue}"] = send
                tg.start_soon(run_adapter, adapter, receive, to_ledger.clone())
            for venue in live:
                send, receive = anyio.create_memory_object_stream[list[Accepted]](queues.adapter)
                adapter_sends.append(send)
                self._streams[f"adapter.{venue.venue}"] = send
                tg.start_soon(venue.run, receive, to_ledger.clone())
            tg.start_soon(run_router, router, router_in, adapter_sends, to_ledger)
            tg.start_soon(run_sentinel, sentinel, sentinel_in, to_router,
                          self._sentinel_commands if commands else None, self._expect)
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
        await reader.run(send, self._reader_commands if commands else None, self._expect)

    def _live_venues(self, state: RecoveredState, clock: Clock) -> list[CcxtVenue]:
        """One ccxt venue per live venue that has credentials, with its unresolved orders."""
        if not self.credentials:
            return []
        from execd.venues.ccxt_venue import CcxtVenue  # imported here: ccxt is heavy

        venues = []
        for name, credentials in self.credentials.items():
            table = self.config.venues[name].ccxt
            assert table is not None
            unresolved = [(order, time) for order, time in state.unresolved.values()
                          if order.venue == name]
            venues.append(CcxtVenue(name, table, credentials, clock, watch=self._watch,
                                    settle=self._settle, stopping=self.stopping,
                                    unresolved=unresolved))
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

    async def _signals(self, signals: AsyncIterator[int]) -> None:
        async for signum in signals:
            name = signal.Signals(signum).name
            if self.stopping.is_set():
                self.log.warning("daemon.already_draining", signal=name)
                continue
            self.stop_reason = f"signal {name}"
            self.log.info("daemon.draining", signal=name)
            self.stopping.set()

    # ------------------------------------------------------------ control

    async def _command(self, req: Request) -> dict[str, Any]:
        """Carry out one ``execd ctl`` command; answer once its records are durable."""
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

    def _status(self) -> dict[str, Any]:
        return {
            "mode": self.mode, "stopping": self.stopping.is_set(),
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

    def _file_entry(self, entry: Entry) -> None:
        """The reader made an input_file record: move its file once that is durable."""
        self._watch(entry, lambda seq: self._dispose(entry.body))  # type: ignore[arg-type]

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
        if self.config.log.outcomes == "each":
            seq = commit.last_seq - len(entries)
            for entry in entries:
                seq += 1
                body = entry.body
                if type(body) is ExecutionOutcome:
                    self.log.info("outcome", seq=seq, intent_id=str(body.intent_id),
                                  venue=body.venue, plane=body.plane, status=body.status,
                                  reason=body.reason, detail=body.detail,
                                  filled=str(body.filled_quantity))
        else:
            self.log.info("ledger.commit", records=len(entries), last_seq=commit.last_seq)

    def _dispose(self, record: InputFileRecord) -> None:
        """Move a finished input file out of work/, now that its record is durable."""
        lakehouse = self.config.lakehouse
        target = lakehouse.archive if record.disposition == "archive" else lakehouse.rejected
        target.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(lakehouse.work / record.file, target / record.file)
        except FileNotFoundError:
            self.log.warning("input.already_moved", file=record.file)
        else:
            self.log.info("input.done", file=record.file, to=target.name, lines=record.lines)

