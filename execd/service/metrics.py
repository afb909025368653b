"""The daemon's Prometheus endpoint, served on loopback only.

Three paths, any other is 404: ``/metrics`` (Prometheus text), ``/healthz`` (200 while
every actor and the event loop make progress, judged from the watchdog's pulses by
:class:`Watch`; 503 naming what is stuck) and ``/readyz`` (200 when ready to trade,
see :func:`readiness`; 503 with a short reason).

Two kinds of numbers, two ways of keeping them:

- Per-intent counts (intents read, outcomes by status and reason) are plain dict
  increments done in the event-loop thread. At ~100,000 intents/s a prometheus_client
  ``Counter.labels(...).inc()`` (a label lookup and a lock per call) would be a
  measurable share of the budget; a dict increment is not. :class:`_Collector` turns
  the dicts into metric families when Prometheus scrapes.
- Per-commit and per-venue-call timings use prometheus_client ``Histogram`` objects:
  they are observed once per group commit or per network call, so their lock is noise.

Scrapes run in prometheus_client's HTTP server thread. Everything the event loop
mutates is copied with ``dict(d)`` first (a single C-level copy, atomic under the GIL),
and the gauges come from a :class:`Snapshot` read through a function the daemon
supplies. A scrape must never take the daemon down, so a failing snapshot only drops
the gauges from that scrape.

Every :class:`Metrics` has its own ``CollectorRegistry``: several daemons may run in one
test process, and the global registry would mix them up.

Every label value comes from a small fixed set, since each combination is a series
kept for good: statuses and reason codes from :mod:`execd.model.reasons`, planes, and venues
from the config. An outcome's venue is what its intent named, so 200,000 intents
naming 200,000 made-up venues would otherwise make 200,000 series; a venue the config
does not have is counted as ``venue="(unknown)"`` (no venue at all stays ``""``), and
any other value outside its set as ``"(other)"``. Venue calls are labelled by the
configured venue, the ccxt method and ``ok`` or the exception's class name, all of
which come from code, not from input.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from socketserver import ThreadingMixIn
from typing import Any, Final, get_args
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from msgspec import Struct
from prometheus_client import CollectorRegistry, Histogram, generate_latest, make_wsgi_app
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from execd import __version__
from execd.model.clock import monotonic
from execd.model.messages import TradingState
from execd.model.reasons import REASONS, STATUSES
from execd.service.liveness import Liveness, Pulse

# 50 µs (page-cache fsync on a fast NVMe) to 1 s (a stalled disk). 0.1 is a bucket
# edge so that the "p99 above 100 ms" alert is exact, not interpolated.
FSYNC_BUCKETS: Final = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
)
# Records per group commit: powers of two up to twice the default commit_records.
COMMIT_RECORD_BUCKETS: Final = tuple(float(2**i) for i in range(15))
# 1 ms to 30 s (ccxt's default timeout is 10 s). 2.0 is an edge for the p99 alert.
VENUE_CALL_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0,
)

_TRADING_STATES: Final[tuple[str, ...]] = get_args(TradingState)
_OUTCOME_LABELS: Final = ("status", "reason", "venue", "plane")
UNKNOWN_VENUE: Final = "(unknown)"
OTHER: Final = "(other)"
_PLANES: Final = frozenset(("paper", "live", ""))
# ASCII digits only: int() alone would also take "+80", " 80", "8_0" and "٨٠".
_PORT: Final = re.compile(r"[0-9]{1,5}")


class Snapshot(Struct, frozen=True, kw_only=True):
    """The daemon's state as the gauges show it, read at scrape time.

    The function returning it runs in the HTTP server thread, so it should only read
    plain attributes (no awaiting, no locks the event loop holds for long).
    """

    queues: dict[str, int]
    """Stream name -> batches buffered."""
    trading_state: str
    """ACTIVE, REDUCING or HALTED."""
    venues: dict[str, str]
    """Venue -> its state text: "starting", "reconciling…", "ready", "cannot start: …"."""
    ready: bool
    """READY=1 was sent: recovery and reconciliation are done."""
    draining: bool
    ledger_last_seq: int
    reloads: int
    """Config reloads applied since start."""
    reloads_refused: int
    """Config reloads refused since start."""
    queue_capacity: dict[str, int] = {}
    """Stream name -> capacity in batches, so an alert can tell "full" from "busy"."""
    inbox_files: int = 0
    """Input files waiting in the inbox when the reader last listed it."""
    inbox_oldest_age: float | None = None
    """Seconds since the oldest waiting file was last modified (never below 0); None when
    none waits."""
    last_outcome_time: float | None = None
    """Unix seconds when the last outcome since start became durable; None before one."""
    start_time: float | None = None
    """Unix seconds when this process started."""
    drift: dict[tuple[str, str], float] = {}
    """(venue, asset) -> how far what the venue holds is outside what the ledger says
    (README, "What the venue holds"); only where it is."""


class _Collector:
    """Turns the hot-path dicts and the snapshot into metric families at scrape time."""

    def __init__(self) -> None:
        # Written only by the event-loop thread; read (copied) by scrapes.
        self.ingested = 0
        self.drifts = 0
        self.outcomes: dict[tuple[str, str, str, str], int] = {}
        self.read: Callable[[], Snapshot] | None = None
        self.watch: Watch | None = None
        # Written by scrapes, which may run concurrently (a thread per request).
        self._lock = threading.Lock()
        self._snapshot_errors = 0

    def describe(self) -> Iterator[Metric]:
        """The families collect() may yield (only their names and types matter).

        With describe() the registry knows the names: it refuses clashes, and
        ``/metrics?name[]=…`` can find this collector.
        """
        yield from self._counters(0, {}, 0, 0)
        yield from _gauges(None)
        yield from _watchdog(None)

    def collect(self) -> Iterator[Metric]:
        """Every family. The snapshot is read and converted before anything is yielded,
        so a failure there drops only the gauges, never the whole scrape."""
        outcomes = dict(self.outcomes)  # one C-level copy: atomic under the GIL
        gauges: list[Metric] = []
        read = self.read
        if read is not None:
            try:
                gauges = _gauges(read())
            except Exception:  # noqa: BLE001 - a failed snapshot skips the gauges
                with self._lock:
                    self._snapshot_errors += 1
        with self._lock:
            errors = self._snapshot_errors
        yield from self._counters(self.ingested, outcomes, errors, self.drifts)
        yield from gauges
        if self.watch is not None:
            yield from _watchdog(self.watch.stuck())

    @staticmethod
    def _counters(
        ingested: int, outcomes: dict[tuple[str, str, str, str], int], errors: int,
        drifts: int
    ) -> Iterator[Metric]:
        build = GaugeMetricFamily("execd_build_info", "execd build; the value is 1.",
                                  labels=("version",))
        build.add_metric((__version__,), 1.0)
        yield build
        yield CounterMetricFamily("execd_intents_ingested", "Intents read from the input.",
                                  value=ingested)
        family = CounterMetricFamily("execd_outcomes", "Outcomes by status, reason code "
                                     "(empty for a plain fill), venue and plane.",
                                     labels=_OUTCOME_LABELS)
        for labels, count in outcomes.items():
            family.add_metric(labels, count)
        yield family
        yield CounterMetricFamily("execd_snapshot_errors", "Scrapes whose state snapshot "
                                  "failed; their gauges were left out.", value=errors)
        yield CounterMetricFamily("execd_drift_records", "drift records in state drift: a "
                                  "live venue's holdings left what the ledger says.",
                                  value=drifts)


def _gauges(snap: Snapshot | None) -> list[Metric]:
    """The snapshot's families; empty families (for describe()) when ``snap`` is None.

    Built as a list, not yielded, and every value converted here (prometheus_client
    converts only while writing the response), so that a malformed snapshot fails
    inside the caller's ``try`` and not halfway through a scrape.
    """
    depth = GaugeMetricFamily("execd_queue_depth", "Batches buffered in a stream.",
                              labels=("queue",))
    capacity = GaugeMetricFamily("execd_queue_capacity", "Capacity of a stream, in "
                                 "batches.", labels=("queue",))
    state = GaugeMetricFamily("execd_trading_state", "1 for the current trading state, "
                              "0 for the others.", labels=("state",))
    venue_ready = GaugeMetricFamily("execd_venue_ready", "1 when the venue is ready.",
                                    labels=("venue",))
    reconciling = GaugeMetricFamily("execd_venue_reconciling", "1 while the venue's "
                                    "orders are being reconciled.", labels=("venue",))
    ready = GaugeMetricFamily("execd_ready", "1 once recovery and reconciliation are done.")
    draining = GaugeMetricFamily("execd_draining", "1 while the daemon drains to stop.")
    last_seq = GaugeMetricFamily("execd_ledger_last_seq", "Sequence number of the last "
                                 "ledger record.")
    reloads = CounterMetricFamily("execd_config_reloads", "Config reloads by result.",
                                  labels=("result",))
    inbox = GaugeMetricFamily("execd_inbox_files", "Input files waiting in the inbox when "
                              "the reader last listed it.")
    oldest = GaugeMetricFamily("execd_inbox_oldest_file_age_seconds", "Seconds since the "
                               "oldest waiting input file was modified, by its mtime (0 "
                               "when none waits or it is dated in the future).")
    last_outcome = GaugeMetricFamily("execd_last_outcome_time_seconds", "Unix time of the "
                                     "last outcome since start (absent before the first).")
    started = GaugeMetricFamily("execd_start_time_seconds", "Unix time the daemon started.")
    drift = GaugeMetricFamily("execd_drift_quantity", "How far a live venue's holdings of "
                              "an asset are outside what the ledger says execd holds there "
                              "(positive: the venue holds more); 0 once back inside.",
                              labels=("venue", "asset"))
    families: list[Metric] = [depth, capacity, state, venue_ready, reconciling, ready,
                              draining, last_seq, reloads, inbox, oldest, last_outcome, started,
                              drift]
    if snap is None:
        return families
    for (venue, asset), amount in snap.drift.items():
        drift.add_metric((str(venue), str(asset)), float(amount))
    inbox.add_metric((), float(snap.inbox_files))
    # A file dated in the future is no age, not a negative one (ExecdInboxNotConsumed).
    oldest.add_metric((), max(0.0, float(snap.inbox_oldest_age or 0.0)))
    if snap.last_outcome_time is not None:
        last_outcome.add_metric((), float(snap.last_outcome_time))
    if snap.start_time is not None:
        started.add_metric((), float(snap.start_time))
    for queue, batches in snap.queues.items():
        depth.add_metric((str(queue),), float(batches))
    for queue, batches in snap.queue_capacity.items():
        capacity.add_metric((str(queue),), float(batches))
    for name in _TRADING_STATES:
        state.add_metric((name,), 1.0 if snap.trading_state == name else 0.0)
    for venue, text in snap.venues.items():
        venue_ready.add_metric((str(venue),), 1.0 if text == "ready" else 0.0)
        reconciling.add_metric((str(venue),), 1.0 if text.startswith("reconciling") else 0.0)
    ready.add_metric((), 1.0 if snap.ready else 0.0)
    draining.add_metric((), 1.0 if snap.draining else 0.0)
    last_seq.add_metric((), float(snap.ledger_last_seq))
    reloads.add_metric(("applied",), float(snap.reloads))
    reloads.add_metric(("refused",), float(snap.reloads_refused))
    return families


def _watchdog(stuck: dict[str, float] | None) -> list[Metric]:
    """The watchdog's state: ok or not, and each stuck actor's silence (see Watch)."""
    ok = GaugeMetricFamily("execd_watchdog_ok", "1 while every actor and the event loop "
                           "make progress (what /healthz answers 200 for), 0 when one is "
                           "stuck.")
    silent = GaugeMetricFamily("execd_watchdog_stuck_seconds", "Seconds a stuck actor has "
                               "been working without progress (\"loop\": the event loop).",
                               labels=("actor",))
    if stuck is not None:
        ok.add_metric((), 0.0 if stuck else 1.0)
        for actor, seconds in sorted(stuck.items()):
            silent.add_metric((str(actor),), float(seconds))
    return [ok, silent]


def readiness(snap: Snapshot) -> str | None:
    """Why the daemon is not ready to trade, or None when it is (``/readyz``).

    Ready: READY was sent (recovered, venues reconciled), no drain began, trading is
    ACTIVE or REDUCING (intents that shrink a position still execute; HALTED executes
    only Safety Sell), and every venue is ready.
    """
    why = []
    if snap.draining:
        why.append("draining: the daemon is stopping")
    elif not snap.ready:
        why.append("starting: recovery or the venues' reconciliation is not done")
    if snap.trading_state not in ("ACTIVE", "REDUCING"):
        why.append(f"trading state {snap.trading_state}")
    why += [f"venue {venue} {state}" for venue, state in sorted(snap.venues.items())
            if state != "ready"]
    return "; ".join(why) if why else None


class Watch:
    """The watchdog's judgement made from the endpoint's thread (``/healthz``, a gauge).

    It uses the pulses the supervisor's watchdog uses (:mod:`execd.service.liveness`),
    through an observer of its own, so the supervisor's judgement is untouched. The
    server thread looks every poll (at most half a second), so a stuck actor is seen at the
    first request after ``after`` seconds, not only after two requests.

    ``loop`` is the event loop's own pulse (:func:`execd.service.liveness.heartbeat`),
    judged here only: it beats at a pace set for ``after``, which the supervisor's
    watchdog period knows nothing of.
    """

    def __init__(self, liveness: Liveness, after: float, loop: Pulse | None = None) -> None:
        """``after``: seconds an actor may work without a beat before it counts as stuck."""
        self._judge = liveness.observer()
        self._loop = Liveness()
        if loop is not None:
            self._loop.pulses[loop.name] = loop
        self._after = after
        self._lock = threading.Lock()

    def stuck(self) -> dict[str, float]:
        """Stuck actors now, with how long each has been silent (empty: all is well)."""
        with self._lock:
            now = monotonic()
            return {**self._loop.stuck(now, self._after), **self._judge.stuck(now, self._after)}


_PLAIN: Final = [("Content-Type", "text/plain; charset=utf-8")]
_STATUS: Final = {200: "200 OK", 404: "404 Not Found", 503: "503 Service Unavailable"}


class Metrics:
    """One daemon's metrics: hot-path counters, histograms, gauges and the endpoint."""

    def __init__(self, *, venues: Iterable[str]) -> None:
        """``venues``: the configured venues, the only venue label values (see above)."""
        self._venues = frozenset(venues)
        self.registry = CollectorRegistry()
        self._collector = _Collector()
        # The same dict object as the collector's: outcome() skips one attribute hop.
        self._outcomes = self._collector.outcomes
        self.registry.register(self._collector)
        self._fsync = Histogram("execd_ledger_fsync_seconds", "Duration of a ledger "
                                "group commit's fsync.", buckets=FSYNC_BUCKETS,
                                registry=self.registry)
        self._commit_records = Histogram("execd_ledger_commit_records", "Records per "
                                         "ledger group commit.",
                                         buckets=COMMIT_RECORD_BUCKETS,
                                         registry=self.registry)
        self._venue_calls = Histogram("execd_venue_call_seconds", "Duration of a call to "
                                      "a venue's API.", ("venue", "call", "result"),
                                      buckets=VENUE_CALL_BUCKETS, registry=self.registry)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.address: tuple[str, int] | None = None
        """Where serve() bound the endpoint (host, port), while it serves."""

    def ingested(self, n: int) -> None:
        """Count ``n`` intents read from the input."""
        self._collector.ingested += n

    def outcome(self, status: str, reason: str | None, venue: str, plane: str) -> None:
        """Count one outcome. Hot path: one tuple and one dict increment.

        Only a key never seen before is checked against the label sets, and a key
        that fails the check is never stored, so made-up values cost one lookup each
        and no memory.
        """
        key = (status, reason or "", venue, plane)
        outcomes = self._outcomes
        try:
            outcomes[key] += 1
        except KeyError:
            bounded = self._bounded(key)
            outcomes[bounded] = outcomes.get(bounded, 0) + 1

    def _bounded(self, key: tuple[str, str, str, str]) -> tuple[str, str, str, str]:
        status, reason, venue, plane = key
        return (status if status in STATUSES else OTHER,
                reason if reason == "" or reason in REASONS else OTHER,
                self._venue(venue),
                plane if plane in _PLANES else OTHER)

    def _venue(self, venue: str) -> str:
        """``venue`` if configured (or empty), else UNKNOWN_VENUE."""
        return venue if venue == "" or venue in self._venues else UNKNOWN_VENUE

    def drifted(self) -> None:
        """A ``drift`` record (a venue's holdings left the ledger's band) is durable."""
        self._collector.drifts += 1

    def committed(self, records: int, fsync_seconds: float) -> None:
        """Record one ledger group commit of ``records`` records."""
        self._fsync.observe(fsync_seconds)
        self._commit_records.observe(records)

    def venue_call(self, venue: str, call: str, seconds: float, result: str) -> None:
        """Record one venue API call (``call`` e.g. "create_order"; ``result`` "ok"/"error").

        Labels must come from small fixed sets (configured venues, method names):
        each combination is a time series. A venue the config does not have is
        counted as UNKNOWN_VENUE.
        """
        self._venue_calls.labels(self._venue(venue), call, result).observe(seconds)

    def snapshot(self, read: Callable[[], Snapshot]) -> None:
        """Set the function scrapes call for the gauges (runs in the HTTP thread)."""
        self._collector.read = read

    def watch(self, liveness: Liveness, after: float, loop: Pulse | None = None) -> None:
        """Judge ``liveness`` (and ``loop``) for ``/healthz`` and the watchdog gauges."""
        self._collector.watch = Watch(liveness, after, loop)

    def health(self) -> tuple[int, str]:
        """``/healthz``: 200 while nothing is stuck, 503 naming what is."""
        watch = self._collector.watch
        if watch is None:
            return 200, "alive (no watch)\n"
        stuck = watch.stuck()
        if not stuck:
            return 200, "alive\n"
        return 503, "stuck: " + ", ".join(
            f"{actor} ({seconds:.1f}s without progress)"
            for actor, seconds in sorted(stuck.items())) + "\n"

    def ready(self) -> tuple[int, str]:
        """``/readyz``: 200 when ready to trade, else 503 and why (see readiness())."""
        read = self._collector.read
        if read is None:
            return 503, "no state yet\n"
        try:
            why = readiness(read())
        except Exception as exc:  # noqa: BLE001 - an answer, never a crashed request
            return 503, f"state unreadable: {type(exc).__name__}\n"
        return (200, "ready\n") if why is None else (503, why + "\n")

    def _app(self) -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
        """The endpoint's WSGI app: /metrics, /healthz and /readyz; any other path 404."""
        metrics_app = make_wsgi_app(self.registry)
        answers = {"/healthz": self.health, "/readyz": self.ready}

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "")
            if path == "/metrics":
                result: Iterable[bytes] = metrics_app(environ, start_response)
                return result
            answer = answers.get(path)
            code, text = (answer() if answer is not None else
                          (404, "not found: this endpoint serves /metrics, /healthz and "
                                "/readyz\n"))
            body = text.encode()
            start_response(_STATUS[code], [*_PLAIN, ("Content-Length", str(len(body)))])
            return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else body]

        return app

    def render(self) -> bytes:
        """The metrics in Prometheus text format, as a scrape would get them."""
        return generate_latest(self.registry)

    def serve(self, host: str, port: int, *, max_clients: int = 8,
              client_timeout: float = 5.0) -> tuple[str, int]:
        """Serve the metrics on ``host``:``port`` (loopback only) in a daemon thread.

        Port 0 picks a free port. Returns the address actually bound. At most
        ``max_clients`` connections are served at once (others are closed at once), and
        each has ``client_timeout`` seconds in all to send its request and take its
        answer; past that its socket is shut down and its slot freed. Each one holds a
        thread and a file descriptor: a deadline per read would let clients that trickle
        a header line now and then hold every slot, and /healthz with them.
        """
        _loopback(host)  # the endpoint has no authentication: never off the host
        if self._server is not None:
            raise RuntimeError("the metrics endpoint is already being served")

        class Handler(_QuietHandler):
            timeout = client_timeout

        class Server(_BoundedServer):
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

        server = make_server(host, port, self._app(), Server, handler_class=Handler)
        server.slots = threading.BoundedSemaphore(max_clients)
        server.deadline = client_timeout
        server.look = self._look
        # Deadlines are enforced each poll: a quarter of the timeout keeps a cut-off
        # close to it; half a second at most is what close() waits for.
        poll = min(0.5, client_timeout / 4)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": poll},
                                  name="metrics", daemon=True)
        thread.start()
        self._server, self._thread = server, thread
        bound = server.socket.getsockname()
        self.address = str(bound[0]), int(bound[1])
        return self.address

    def _look(self) -> None:
        """The server thread's look at the pulses, every poll (see Watch)."""
        watch = self._collector.watch
        if watch is not None:
            watch.stuck()

    def close(self) -> None:
        """Stop serving and free the port. Idempotent.

        Blocks until the server thread notices, up to its poll interval (0.5 s): call it
        from a worker thread, not the event loop.
        """
        server, thread = self._server, self._thread
        self._server = self._thread = None
        self.address = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join()


class _QuietHandler(WSGIRequestHandler):
    """Logs nothing (scrapes are not events)."""

    def log_message(self, format: str, *args: Any) -> None:
        """Nothing."""

    def handle(self) -> None:
        """Serve one request; a connection cut at its deadline, or by its client, ends
        quietly (its 400 or answer cannot be written), not as a traceback on stderr."""
        with contextlib.suppress(OSError):
            super().handle()


class _BoundedServer(ThreadingMixIn, WSGIServer):
    """A thread per connection, at most ``slots`` at once, each until its deadline; the
    rest closed unserved."""

    daemon_threads = True
    slots: threading.BoundedSemaphore
    deadline: float = 5.0
    """Seconds a connection has in all: its request line, headers and answer."""
    look: Callable[[], None] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """As WSGIServer's; then no connection is open yet."""
        super().__init__(*args, **kwargs)
        # Open connections -> when they must be done (model.clock.monotonic). The lock
        # makes a cut and a close exclusive: a socket is never shut down once closed
        # (its descriptor may by then be another connection's).
        self._due: dict[Any, float] = {}
        self._due_lock = threading.Lock()

    def service_actions(self) -> None:
        """Called by ``serve_forever`` every poll: overdue connections are cut, and the
        health watch looks at the pulses."""
        self._cut_overdue()
        look = self.look
        if look is not None:
            look()

    def _cut_overdue(self) -> None:
        """Shut down every connection past its deadline: its thread's blocked read or
        write returns at once, the thread ends and gives its slot back."""
        now = monotonic()
        with self._due_lock:
            overdue = [request for request, due in self._due.items() if due <= now]
            for request in overdue:
                del self._due[request]
                with contextlib.suppress(OSError):  # the client has gone already
                    request.shutdown(socket.SHUT_RDWR)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve ``request`` in a thread of its own, if a slot is free."""
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        with self._due_lock:
            self._due[request] = monotonic() + self.deadline
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._forget(request)  # the caller closes it
            self.slots.release()
            raise

    def shutdown_request(self, request: Any) -> None:
        """Forget the connection's deadline, then close it."""
        self._forget(request)
        super().shutdown_request(request)

    def _forget(self, request: Any) -> None:
        with self._due_lock:
            self._due.pop(request, None)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Serve, then give the slot back."""
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


def _loopback(host: str) -> str:
    """``host`` normalised, or ValueError unless it is a loopback IP address."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"metrics host {host!r} is not an IP address; use a loopback "
                         "address such as 127.0.0.1 or [::1]") from None
    if not address.is_loopback:
        raise ValueError(f"metrics host {host} is not a loopback address: the endpoint has "
                         "no authentication, so it is only served on 127.0.0.0/8 or ::1")
    return str(address)


def parse_listen(text: str) -> tuple[str, int]:
    """Parse ``"127.0.0.1:9464"`` or ``"[::1]:9464"`` into a loopback host and a port.

    The host comes back without brackets, as ``serve()`` takes it.
    """
    host, colon, port = text.rpartition(":")
    if not colon or text.endswith("]"):
        raise ValueError(f"metrics listen address {text!r} has no port: expected HOST:PORT, "
                         "e.g. 127.0.0.1:9464 or [::1]:9464")
    bracketed = host.startswith("[") and host.endswith("]")
    if bracketed:
        host = host[1:-1]
    elif ":" in host or "[" in host or "]" in host:
        raise ValueError(f"metrics listen address {text!r}: an IPv6 host must be in "
                         "brackets, e.g. [::1]:9464")
    if not _PORT.fullmatch(port) or int(port) > 65535:
        raise ValueError(f"metrics listen address {text!r}: port {port!r} is not an "
                         "integer from 0 to 65535")
    normal = _loopback(host)
    if bracketed and ":" not in normal:
        raise ValueError(f"metrics listen address {text!r}: brackets are for IPv6 only")
    return normal, int(port)
