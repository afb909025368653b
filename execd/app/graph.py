"""The actor graph of one run: the streams between the actors, and their tasks.

::

    Reader ──▶ Sentinel ──▶ Router ──▶ Adapter[venue] ──▶ Ledger writer
                                  └──────── outcomes ──────▶

Every arrow is a bounded anyio memory stream carrying batches (a list per
message); capacities come from ``[queues]`` (docs/ARCHITECTURE.md, "Actors and
streams"). Nothing here decides anything: it makes the actors, connects them and
starts them in one task group, which ends once the drain has reached the writer.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import anyio
from anyio.abc import ObjectSendStream
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from execd.app.durable import answer_when_durable, move_when_durable
from execd.config.schema import Config
from execd.ledger.recovery import RecoveredState
from execd.ledger.writer import LedgerWriter
from execd.model.clock import Clock, WallClock
from execd.model.messages import (
    Accepted,
    Entry,
    HoldingsIn,
    IntentIn,
    ReaderItem,
    RouterItem,
    Settled,
)
from execd.policy.file import Policy
from execd.reader.context import ContextLoader
from execd.reader.core import ReaderCore
from execd.reader.inbox import InboxSource, InputSource, ListSource
from execd.reader.shell import LakehouseReader
from execd.router import RouterCore, run_router
from execd.sentinel.core import SentinelCore
from execd.sentinel.risk import Risk
from execd.sentinel.shell import Nudge, run_sentinel, run_settlements
from execd.service import logs
from execd.service.control import ControlRequest
from execd.service.liveness import Liveness
from execd.venues import Adapter, run_adapter
from execd.venues.ccxt.credentials import Credentials
from execd.venues.paper import PaperAdapter
from execd.venues.stub import StubAdapter

if TYPE_CHECKING:
    from execd.service.metrics import Metrics
    from execd.venues.ccxt.venue import CcxtVenue

Mode = Literal["run", "replay"]
#: How often the daemon reads the lakehouse context again while no file comes, under
#: the wall clock (a live POV follows the market's volume file with no input at all).
CONTEXT_EVERY_S = 1.0


def make_adapters(config: Config) -> tuple[list[Adapter], dict[str, int]]:
    """One adapter per venue without I/O, in venue-name order, and the venue -> index map.

    Venues served through ccxt are made by the graph (they need its clock and hooks).
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


def input_source(config: Config, mode: Mode, inputs: list[Path], state: RecoveredState,
                 stopping: anyio.Event, liveness: Liveness) -> InputSource:
    """The reader's files: the inbox for ``execd run``, the given list for replay.

    Blocking when it is the inbox: its constructor checks, and moves on, what an
    earlier run left in work/ (call it in a worker thread, as claims are).
    """
    if mode == "replay":
        return ListSource(inputs)
    return InboxSource(
        config.lakehouse,
        progress=state.progress, done=state.done, refusing=state.refusing,
        rejected=state.rejected, changed=state.changed,
        poll_seconds=config.daemon.poll_interval_ms / 1000,
        settle_seconds=config.daemon.settle_ms / 1000, finished_files=config.queues.files,
        time=state.scan.last_time, wait_durable=True, stopping=stopping,
        log=logs.get("reader"),
        pulse=liveness.pulse("reader"),
    )


class Graph:
    """The actors of one run, wired to each other and started in one task group.

    ``live`` (the ccxt venues) and ``streams`` (the send side of every actor's
    inbox, for queue depths) are read by ``execd ctl status`` and the metrics.
    """

    def __init__(
        self,
        config: Config,
        *,
        mode: Mode,
        state: RecoveredState,
        clock: Clock,
        writer: LedgerWriter,
        risk: Risk,
        source: InputSource,
        credentials: dict[str, Credentials],
        stopping: anyio.Event,
        liveness: Liveness,
        commands: tuple[MemoryObjectReceiveStream[ControlRequest],
                        MemoryObjectReceiveStream[ControlRequest]],
        metrics: Metrics | None,
        read_probe: Callable[[list[ReaderItem]], None] | None,
        waiting: Callable[[], None],
        ready: Callable[[], None],
        policy: Policy | None = None,
    ) -> None:
        self.config = config
        self.policy = policy
        self.mode = mode
        self.state = state
        self.clock = clock
        self.writer = writer
        self.risk = risk
        self.source = source
        self.inbox = source if isinstance(source, InboxSource) else None
        self.credentials = credentials
        self.stopping = stopping
        self.liveness = liveness
        # (to the reader, to the sentinel): operator commands, `execd run` only.
        self.reader_commands, self.sentinel_commands = commands
        self.metrics = metrics
        self.read_probe = read_probe
        # Told when the reader starts to wait for the live venues, and once it may read.
        self.waiting = waiting
        self.ready = ready
        self.log = logs.get("daemon")
        self.live: list[CcxtVenue] = []
        # The reader, once running: `execd replay`'s progress display reads its counts.
        self.reader: LakehouseReader | None = None
        self.streams: dict[str, MemoryObjectSendStream[Any]] = {}
        self._settlements: MemoryObjectSendStream[Settled | HoldingsIn] | None = None
        # Set once the live venues are ready (or the daemon stopped before): schedules
        # release nothing to a venue before then.
        self._ready = anyio.Event()

    def queues(self) -> dict[str, int]:
        """How many batches wait in each actor's inbox now."""
        return {name: stream.statistics().current_buffer_used
                for name, stream in list(self.streams.items())}

    def capacities(self) -> dict[str, int]:
        """How many batches each actor's inbox holds at most."""
        return {name: int(stream.statistics().max_buffer_size)
                for name, stream in list(self.streams.items())}

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

    def _reader(self) -> LakehouseReader:
        config, inbox = self.config, self.inbox
        return LakehouseReader(
            ReaderCore(self.clock, 0, config.input.max_line_bytes), self.source,
            chunk_bytes=config.batches.read_chunk_bytes, batch_items=config.batches.items,
            stopping=self.stopping, on_finished=inbox.finished if inbox is not None else None,
            probe=self._probe(),
            on_file_entry=move_when_durable if inbox is not None else None,
            file_slots=inbox.slots if inbox is not None else None,
            context=ContextLoader(
                config.lakehouse,
                Path(config.governance.ledger_dir) if config.governance.enforce else None,
                config.risk.crisis_regimes, max_bytes=config.input.max_context_bytes),
            pulse=self.liveness.pulse("reader"),
            context_every=CONTEXT_EVERY_S if inbox is not None and not self.clock.logical
            else None,
        )

    async def run(self) -> None:
        """Start every actor; return once the drain has made everything durable."""
        config, state = self.config, self.state
        queues = config.queues
        adapters, index = make_adapters(config)
        reader = self.reader = self._reader()
        # The context as of the start, which the sentinel records before its catch-up
        # when schedules are open (a restart's children are re-checked under it, a POV
        # sized by its volume), or when a routed order may be handed on, or a target's
        # legs a stop cut off are sent (judged under it); else the reader records it
        # before the first file.
        first = None
        targets = self.risk.targets if self.risk is not None else None
        if reader.context is not None and (len(state.schedules) or state.schedules.unrecorded
                                           or state.routes.open or state.routes.handed
                                           or (targets and targets.pending)):
            first = await anyio.to_thread.run_sync(reader.context.load)
            reader.started_with(first)
        live = self.live = self._live_venues()
        sentinel = SentinelCore(config.planes(), state.seen, self.risk, state.schedules,
                                {venue.venue: venue for venue in live}, self.policy,
                                config.routes)
        # Orders handed on before the stop whose rest was not routed yet.
        sentinel.handoffs.extend(state.routes.handoffs())
        sentinel.routed.update(state.routes.flying(
            {i: (bytes(order.intent), time) for i, (order, time) in state.unresolved.items()}))
        # What `execd ctl status` shows before the first batch: the recovered time.
        sentinel.time = self.clock.now()
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
        # Holdings: at most one read in flight per venue.
        settle_send, settle_receive = anyio.create_memory_object_stream[Settled | HoldingsIn](
            config.batches.commit_records + sum(v.table.max_in_flight + v.table.backlog + 1
                                                for v in live) + len(state.unresolved))
        self._settlements = settle_send
        self.streams = {"sentinel": to_sentinel, "router": to_router, "ledger": to_ledger}
        adapter_sends: list[ObjectSendStream[list[Accepted]]] = []
        commands = self.mode == "run"
        writer = self.writer

        async def write() -> None:
            # Settlements follow durability, so they end when the writer does.
            with settle_send:
                await writer.run(ledger_in)

        async with anyio.create_task_group() as tg:
            tg.start_soon(write)
            pulse = self.liveness.pulse
            nudge = Nudge()
            tg.start_soon(run_settlements, sentinel, settle_receive, pulse("settlements"),
                          nudge)
            for adapter in adapters:
                send, receive = anyio.create_memory_object_stream[list[Accepted]](queues.adapter)
                adapter_sends.append(send)
                self.streams[f"adapter.{adapter.venue}"] = send
                tg.start_soon(run_adapter, adapter, receive, to_ledger.clone(),
                              pulse(f"adapter.{adapter.venue}"))
            for venue in live:
                send, receive = anyio.create_memory_object_stream[list[Accepted]](queues.adapter)
                adapter_sends.append(send)
                self.streams[f"adapter.{venue.venue}"] = send
                tg.start_soon(venue.run, receive, to_ledger.clone(),
                              pulse(f"venue.{venue.venue}"))
            tg.start_soon(run_router, router, router_in, adapter_sends, to_ledger,
                          pulse("router"))
            tg.start_soon(run_sentinel, sentinel, sentinel_in, to_router,
                          self.sentinel_commands if commands else None, answer_when_durable,
                          pulse("sentinel"), config.batches.items,
                          None if self.clock.logical else self.clock.now, nudge,
                          self._venues_ready, first)
            if self.inbox is not None:
                tg.start_soon(self.inbox.run_disposals, to_ledger.clone())
            tg.start_soon(self._read, reader, to_sentinel, commands)

    async def _venues_ready(self) -> bool:
        """Once every live venue is ready, True; False when the daemon stopped first."""
        await self._ready.wait()
        return not self.stopping.is_set()

    async def _read(self, reader: LakehouseReader, send: ObjectSendStream[list[ReaderItem]],
                    commands: bool) -> None:
        """Run the reader once every live venue is ready (markets loaded, orders reconciled).

        Until then no intent is read: fail closed. A stop meanwhile still closes the
        reader's stream, which drains the pipeline.
        """
        if self.live:
            for venue in self.live:
                self.log.info("daemon.waiting_for_venue", venue=venue.venue, state=venue.state)
            self.waiting()
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
        self._ready.set()
        if self.mode == "run" and not self.stopping.is_set():
            self.ready()
        try:
            await reader.run(send, self.reader_commands if commands else None,
                             answer_when_durable)
        finally:
            if self.inbox is not None:
                self.inbox.reading_done()

    def _live_venues(self) -> list[CcxtVenue]:
        """One ccxt venue per live venue that has credentials, with its unresolved orders."""
        if not self.credentials:
            return []
        from execd.venues.ccxt.venue import CcxtVenue  # imported here: ccxt is heavy

        venues = []
        state = self.state
        for name, credentials in self.credentials.items():
            table = self.config.venues[name].ccxt
            assert table is not None
            unresolved = [(order, time) for order, time in state.unresolved.values()
                          if order.venue == name]
            # Its own wall clock: live records add wall-clock times, while their
            # logical time is always their intent's (never read from ``clock``).
            venues.append(CcxtVenue(
                name, table, credentials, WallClock(), settle=self._settle,
                stopping=self.stopping, unresolved=unresolved,
                attempts={order.client_order_id: state.last_sends[order.client_order_id]
                          for order, _ in unresolved
                          if order.client_order_id in state.last_sends},
                on_call=self.metrics.venue_call if self.metrics is not None else None))
        return venues

    def _settle(self, settled: Settled | HoldingsIn) -> None:
        """Hand a durable live outcome's settlement (or a venue's holdings) to the
        sentinel (never waits)."""
        assert self._settlements is not None
        try:
            self._settlements.send_nowait(settled)
        except (anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            # Never expected (see the buffer's size). The sentinel then keeps the order
            # pending, which overstates exposure: it refuses more, never less.
            if type(settled) is HoldingsIn:  # compared at the next quiet read instead
                self.log.warning("risk.holdings_dropped", venue=settled.record.venue,
                                 error=type(exc).__name__)
                return
            self.log.error("risk.settlement_dropped", venue=settled.venue,  # type: ignore[union-attr]
                           symbol=settled.symbol, error=type(exc).__name__)  # type: ignore[union-attr]
