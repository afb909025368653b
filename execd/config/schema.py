"""The daemon's configuration: the typed structs a TOML file is decoded into.

Each key's type and bounds are here; reading a file into them, with every problem
reported at once, is :mod:`execd.config.load`; what each key means to a reload and to
the outcome digest is declared once in :mod:`execd.config.keys`, beside this file. A
new key goes into a struct here and into that declaration (a test fails until it is).

Durations: every ``*_ms`` key is a bare integer of milliseconds (:data:`MS` in its
annotation) and every limit window a bare integer of clock units (:data:`CLOCK`); each
also takes a duration string, ``"250ms"``, ``"1.5s"``, ``"5m"``, which the loader turns
into that integer before these types are checked (:mod:`execd.config.durations`). The
bounds below are in the bare integer's unit.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

from msgspec import Meta, Struct

# Defined in execd.model.errors (the one hierarchy), and imported from here by config users.
from execd.config.durations import CLOCK, MS
from execd.model.errors import ConfigError as ConfigError
from execd.model.errors import ConfigProblem as ConfigProblem
from execd.model.messages import MAX_TIME, Plane
from execd.model.reasons import EXECUTION_REJECTED

if TYPE_CHECKING:
    from execd.policy.file import Policy
    from execd.reader.inbox import Lakehouse

Positive = Annotated[int, Meta(ge=1)]
# A limit window in clock units (README.md, "Configuration", Limits): the producer's own
# unit on the logical clock, where only a bare integer means something; nanoseconds on
# the wall clock, where a duration ("5m") is taken too. At most the ledger's time range.
ClockSpan = Annotated[int, Meta(ge=1, le=MAX_TIME), CLOCK]


class DaemonConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """Where the daemon reads and writes. Relative paths are taken from the working directory.

    ``poll_interval_ms`` (how often the inbox is scanned) and ``settle_ms`` are in
    milliseconds, or durations (``"100ms"``, ``"1s"``).
    """

    lakehouse: str
    ledger_dir: str
    poll_interval_ms: Annotated[int, Meta(ge=1, le=60_000), MS] = 100
    # An inbox file is claimed only once its inode, size and times have not changed
    # for this long: a producer writing in place is not read half-written.
    settle_ms: Annotated[int, Meta(ge=0, le=600_000), MS] = 250


class ClockConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """Which clock drives the daemon: ``logical`` (ticks from input) or ``wall``."""

    kind: Literal["logical", "wall"] = "logical"


class QueueConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """Capacities, in batches, of the bounded streams between actors."""

    sentinel: Positive = 4
    router: Positive = 4
    adapter: Positive = 4
    ledger: Positive = 8
    commits: Positive = 1
    # Input files read to their end whose record is not yet durable or whose move out
    # of work/ is not done; the reader waits beyond it.
    files: Positive = 16


class BatchConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """How much work moves at once."""

    read_chunk_bytes: Annotated[int, Meta(ge=4096)] = 1 << 20
    items: Positive = 1024
    commit_records: Positive = 8192


class InputConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """Limits on untrusted input."""

    # At most 8 MiB: a record (the line and its outcome) stays under the ledger readers'
    # bound on a line (ledger/segments.py MAX_LINE), so no record is too long to read back.
    max_line_bytes: Annotated[int, Meta(ge=256, le=8 << 20)] = 1 << 20
    # Each lakehouse context file (runs, regime, prices, overrides): a larger one is a
    # context problem (fail closed), not a read of unbounded size.
    max_context_bytes: Annotated[int, Meta(ge=4096, le=1 << 30)] = 64 << 20


class LedgerConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """Ledger storage. The ``*_ms`` keys are milliseconds, or durations (``"1s"``, ``"1m"``)."""

    segment_bytes: Annotated[int, Meta(ge=4096)] = 256 << 20
    # How often head.json, the witness that the ledger was not cut at its end, is
    # refreshed (0: after every commit), and how often the head is logged.
    head_interval_ms: Annotated[int, Meta(ge=0, le=3_600_000), MS] = 1_000
    head_log_ms: Annotated[int, Meta(ge=1_000, le=86_400_000), MS] = 60_000
    # A checkpoint after every record whose seq is a multiple of this (0: none), and
    # how many snapshot files are kept in checkpoints/ (README, "Checkpoints").
    checkpoint_records: Annotated[int, Meta(ge=0, le=1_000_000_000)] = 50_000
    # And one after the first record this far (clock units) past the last checkpoint:
    # the records' own times, so a replay puts them at the same places (ledger/cadence.py).
    checkpoint_interval: ClockSpan | None = None
    checkpoints_kept: Annotated[int, Meta(ge=1, le=1_000)] = 3
    # How long the writer waits for one snapshot before it records the checkpoint as
    # skipped (README, "Checkpoints"): storage that blocks never stops the ledger.
    checkpoint_timeout_ms: Annotated[int, Meta(ge=1, le=3_600_000), MS] = 30_000


class LogConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """Logging. ``outcomes``: "each" logs every durable outcome, "summary" one line a commit.

    ``format``: "console" (structlog's console renderer), "json" (one object per line),
    or "auto": console on a terminal, JSON under systemd or when stdout is not a
    terminal (:func:`execd.service.logs.choose`); ``--log-format`` wins over it.
    """

    level: Literal["debug", "info", "warning", "error"] = "info"
    outcomes: Literal["each", "summary"] = "each"
    format: Literal["auto", "console", "json"] = "auto"


class GovernanceConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """Execution plans (README.md, "Execution plans (governance)").

    ``ledger_dir``: where the plan event ledger lives. ``enforce``: an intent that
    names a plan executes only while that plan is COMMITTED. ``require_plan``: with
    ``enforce``, an intent that names no plan is refused too.
    """

    ledger_dir: str = "var/governance"
    enforce: bool = False
    require_plan: bool = False


class SymbolLimits(Struct, frozen=True, forbid_unknown_fields=True):
    """Limits that can be set per symbol (and per venue, and for every venue).

    Amounts are in the venue's quote currency. Unset means no limit.
    """

    max_order_notional: Decimal | None = None
    max_asset_exposure: Decimal | None = None
    price_band_bps: Annotated[int, Meta(ge=1, le=100_000)] | None = None


class VenueLimits(SymbolLimits, frozen=True, forbid_unknown_fields=True):
    """Limits per venue (or for every venue).

    ``rate_window``, ``failure_window`` and ``cooldown`` are in clock units, the unit
    of the records' ``time``: with ``clock.kind = "logical"`` the producer's own (the
    unit of its ticks), so only a bare integer; with ``clock.kind = "wall"``
    nanoseconds, so a bare integer of nanoseconds or a duration (``"1s"``, ``"5m"``).
    """

    max_leverage: Decimal | None = None
    equity: Decimal | None = None
    max_orders: Positive | None = None
    rate_window: ClockSpan | None = None
    failure_limit: Positive | None = None
    failure_window: ClockSpan | None = None
    cooldown: ClockSpan | None = None


class RiskConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """The Risk Sentinel: provenance, signatures and the default limits.

    ``signatures``: which planes need a valid HMAC-SHA256 signature on every intent.
    The key comes from ``key_file`` or from the systemd credential ``key_credential``.
    """

    require_registered_run: bool = True
    signatures: Literal["none", "live", "all"] = "live"
    key_file: str | None = None
    key_credential: str | None = None
    crisis_regimes: tuple[Annotated[str, Meta(min_length=1)], ...] = ("CRISIS",)
    limits: VenueLimits = VenueLimits()

    @property
    def signed_planes(self) -> frozenset[Plane]:
        """The planes on which every intent must carry a valid signature."""
        return _SIGNED_PLANES[self.signatures]


_SIGNED_PLANES: Final[dict[str, frozenset[Plane]]] = {
    "none": frozenset(), "live": frozenset({"live"}), "all": frozenset({"paper", "live"})}


class ControlConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """The control socket that ``execd ctl`` talks to.

    Created mode 0600 (owner only), or 0660 with ``group_access`` so an operators'
    group can use it. ``timeout_ms`` bounds how long a command may take before the
    client hears "not confirmed"; ``max_clients`` bounds the connections served at
    once (each holds a file descriptor: a client beyond it is refused "busy" at
    once); ``request_timeout_ms`` is how long a client may take to send its request
    line, so idle connections give their slot back; ``accept_retry_ms`` is the pause
    before accepting again after the process ran out of file descriptors or memory.
    The ``*_ms`` keys are milliseconds, or durations (``"10s"``, ``"250ms"``).
    """

    socket: str = "var/run/execd.sock"
    group_access: bool = False
    timeout_ms: Annotated[int, Meta(ge=10, le=600_000), MS] = 10_000
    max_clients: Annotated[int, Meta(ge=1, le=1024)] = 32
    request_timeout_ms: Annotated[int, Meta(ge=10, le=600_000), MS] = 2_000
    accept_retry_ms: Annotated[int, Meta(ge=1, le=60_000), MS] = 100


class AuditConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """The lakehouse's derived files (README, "The audit files"): kept by ``execd run``
    when ``files`` is true, brought up to the durable ledger every ``interval_ms``."""

    files: bool = True
    interval_ms: Annotated[int, Meta(ge=10, le=3_600_000), MS] = 1_000


class MetricsConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """The Prometheus endpoint: ``listen`` is ``HOST:PORT`` on a loopback address.

    The endpoint has no authentication, so it is never served beyond this host.
    ``client_timeout_ms`` is milliseconds, or a duration (``"5s"``).
    """

    listen: str
    # Each scrape holds a thread and a file descriptor: bounded, and idle ones dropped.
    max_clients: Annotated[int, Meta(ge=1, le=256)] = 8
    client_timeout_ms: Annotated[int, Meta(ge=100, le=60_000), MS] = 5_000
    # /healthz: an actor working this long without progress (or the event loop not
    # running for this long) answers 503; the watchdog's rule (service/liveness.py).
    stuck_after_ms: Annotated[int, Meta(ge=1_000, le=600_000), MS] = 10_000


# Milliseconds, from 1 ms to a day; a duration string is taken too.
Millis = Annotated[int, Meta(ge=1, le=86_400_000), MS]


class CcxtConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """A real exchange through ccxt (``adapter = "ccxt"``).

    Credentials come from exactly one of ``credentials_file`` (JSON with apiKey and
    secret), ``credentials_env`` (PREFIX_API_KEY and PREFIX_SECRET) or
    ``credentials_credential`` (a systemd credential holding that JSON). They are
    never logged nor written to the ledger. Every ``*_ms`` key is milliseconds, or a
    duration (``"30s"``, ``"500ms"``).
    """

    exchange: Annotated[str, Meta(pattern="^[a-z0-9_]+$")]
    credentials_file: str | None = None
    credentials_env: Annotated[str, Meta(pattern="^[A-Z_][A-Z0-9_]*$")] | None = None
    credentials_credential: str | None = None
    # Another API host (a testnet, or a local test exchange): every API URL keeps
    # its path and gets this scheme and host.
    base_url: Annotated[str, Meta(pattern="^https?://[^/]+$")] | None = None
    rate_limit_ms: Annotated[int, Meta(ge=0, le=60_000), MS] = 50
    timeout_ms: Millis = 10_000
    max_in_flight: Annotated[int, Meta(ge=1, le=1024)] = 8
    backlog: Annotated[int, Meta(ge=0, le=100_000)] = 64
    poll_interval_ms: Millis = 500
    # Follow orders by the exchange's private order stream (ccxt.pro watchOrders)
    # where ccxt offers it, polling beside it; off: polling alone.
    stream: bool = True
    # The first wait before opening the stream again after it failed (then doubling,
    # up to 30 s).
    stream_retry_ms: Annotated[int, Meta(ge=10, le=600_000), MS] = 1_000
    order_timeout_ms: Millis = 30_000
    lookup_delay_ms: Annotated[int, Meta(ge=0, le=600_000), MS] = 1_000
    # How late the venue may still act on a request it has not answered: "no such
    # order" is trusted only once this has passed since the send (Binance: execd
    # sets recvWindow to half of it; the other half covers clock skew).
    acceptance_window_ms: Annotated[int, Meta(ge=100, le=120_000), MS] = 10_000
    # Execution never retries on its own (README.md, "The live plane"). One send by
    # default; more is an explicit choice (each after a lookup found no such order,
    # each recorded).
    send_attempts: Annotated[int, Meta(ge=1, le=10)] = 1
    # At start-up, an order an earlier run recorded but the venue never received is
    # sent again only if younger than this (0: never), within send_attempts in all.
    resend_window_ms: Annotated[int, Meta(ge=0, le=86_400_000), MS] = 0
    # How long a stop follows orders already sent before leaving them in doubt for
    # the next start; keep it under the unit's TimeoutStopSec (90 s).
    drain_timeout_ms: Annotated[int, Meta(ge=100, le=600_000), MS] = 60_000
    slippage_bps: Annotated[int, Meta(ge=0, le=10_000)] = 50
    # A final order whose own structure lacks the fees of part of its fill (Binance's
    # GET /api/v3/order has none) has its trades read, at most this many times (0:
    # never), fee_read_pause_ms apart, while they add up to less than the fill: the
    # venue's trade list can lag the order. Short of that, the fees are incomplete.
    fee_reads: Annotated[int, Meta(ge=0, le=10)] = 3
    fee_read_pause_ms: Annotated[int, Meta(ge=0, le=60_000), MS] = 500
    # How often market rules and the venue's status are read again (README, "Can it
    # trade now"); 0: only at start-up.
    markets_refresh_ms: Annotated[int, Meta(ge=0, le=86_400_000), MS] = 300_000
    # How often the account's holdings are read (README, "What the venue holds"); 0:
    # only at start-up.
    holdings_ms: Annotated[int, Meta(ge=0, le=86_400_000), MS] = 60_000
    client_order_prefix: Annotated[str, Meta(pattern="^[A-Za-z0-9]{0,8}$")] = "x"
    client_order_id_length: Annotated[int, Meta(ge=24, le=64)] = 32
    options: dict[str, Any] = {}


class DriftConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """How a live venue's holdings are compared with the ledger (README, "What the
    venue holds"): ``tolerance`` in the base asset (default: the symbol's lot, the
    largest of the symbols that share the asset); ``action`` on drift (``alert``:
    record, metric and alert rule; ``reduce``: also move trading to REDUCING);
    ``baseline``: ``first`` (what the account held besides execd's fills, fixed by the
    first comparison with nothing in flight) or ``zero`` (every unit is execd's)."""

    tolerance: Decimal | None = None
    action: Literal["alert", "reduce"] = "alert"
    baseline: Literal["first", "zero"] = "first"
    # Assets never compared (one that pays fees, as BNB may): a list of asset names.
    ignore: tuple[Annotated[str, Meta(min_length=1, max_length=64)], ...] = ()


class VenueConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """One venue: its plane and the adapter that serves it.

    ``plane = "paper"`` uses the paper adapter. ``plane = "live"`` needs an explicit
    ``adapter``: ``ccxt`` trades on a real exchange (the ``ccxt`` table says which
    and how); ``stub`` is the deterministic live stub (no I/O; README.md,
    "Configuration"), which either fills every intent or fails every intent with
    ``stub_reason``.
    """

    plane: Plane
    adapter: Literal["paper", "stub", "ccxt"] | None = None
    # Needed once, when the ledger last recorded this venue on the paper plane:
    # going live is a decision, not a side effect of an edited file.
    confirm_live: bool = False
    ccxt: CcxtConfig | None = None
    stub_result: Literal["fill", "fail"] = "fill"
    stub_reason: Literal["EXECUTION_NOT_AVAILABLE", "EXECUTION_REJECTED"] = EXECUTION_REJECTED
    limits: VenueLimits = VenueLimits()
    symbols: dict[Annotated[str, Meta(min_length=1, max_length=128)], SymbolLimits] = {}
    drift: DriftConfig = DriftConfig()

    @property
    def adapter_kind(self) -> str:
        """The adapter that serves this venue."""
        return self.adapter or ("paper" if self.plane == "paper" else "")


class RouteConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """A route (README, "Routes"): venues in order of preference, and per venue the
    symbol an intent's symbol trades under there (unnamed: the same)."""

    # Lengths are checked with the other rules of a route (config.load), each its line.
    venues: list[str]
    symbols: dict[str, dict[str, str]] = {}

    def symbol_at(self, venue: str, symbol: str) -> str:
        """What ``symbol`` is called at ``venue``."""
        named = self.symbols.get(venue)
        return symbol if named is None else named.get(symbol, symbol)


class PoliciesConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """The execution policy file (README, "Execution policies"): its rules say which
    order types an intent may use, the execution it gets when it names none, and how
    fast a schedule may trade. Read and checked with the config, at start and on every
    reload; the digest of its rules is part of the outcome-settings digest."""

    file: Annotated[str, Meta(min_length=1)]


class Config(Struct, frozen=True, forbid_unknown_fields=True):
    """The whole configuration file."""

    daemon: DaemonConfig
    venues: dict[Annotated[str, Meta(min_length=1, max_length=128)], VenueConfig]
    clock: ClockConfig = ClockConfig()
    queues: QueueConfig = QueueConfig()
    batches: BatchConfig = BatchConfig()
    input: InputConfig = InputConfig()
    ledger: LedgerConfig = LedgerConfig()
    log: LogConfig = LogConfig()
    governance: GovernanceConfig = GovernanceConfig()
    risk: RiskConfig = RiskConfig()
    control: ControlConfig = ControlConfig()
    metrics: MetricsConfig | None = None
    audit: AuditConfig = AuditConfig()
    policies: PoliciesConfig | None = None
    routes: dict[Annotated[str, Meta(min_length=1, max_length=128)], RouteConfig] = {}
    # Allocations an intent may be sized from (README, "Sizing"): name -> notional in
    # the quote currency ("book:B1" is what a book_id B1 finds).
    allocations: dict[Annotated[str, Meta(min_length=1, max_length=128)], Decimal] = {}

    @property
    def lakehouse(self) -> Lakehouse:
        """The lakehouse directories (inbox, work, archive, rejected)."""
        # Imported here: the reader's module pulls in the ledger's, which loading a
        # config file (config check, the CLI) has no use for.
        from execd.reader.inbox import Lakehouse

        return Lakehouse(Path(self.daemon.lakehouse))

    def planes(self) -> dict[str, Plane]:
        """Venue name to plane, sorted by venue, as recorded in the ledger."""
        return {name: self.venues[name].plane for name in sorted(self.venues)}


class LoadedConfig(Struct, frozen=True):
    """A valid config and the digest of the bytes it came from; with ``[policies]``,
    the policy file it names, read and checked."""

    path: str
    config: Config
    sha256: str
    policy: Policy | None = None


# The config file, and each key and credential file, is read whole; no real one is
# near these sizes, and a file that is (or a FIFO, a device) is refused, not read.
MAX_CONFIG_BYTES: Final = 4 << 20
MAX_SECRET_BYTES: Final = 64 << 10


def load(path: str | Path) -> LoadedConfig:
    """Read and check ``path``: :func:`execd.config.load.load`, importable from here too.

    Callers name the structs and the loader through one module
    (``from execd.config import schema as config``); the loader lives beside it.
    """
    from execd.config.load import load as load_file  # imported here: load imports this

    return load_file(path)
