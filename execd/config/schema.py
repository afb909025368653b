"""The daemon's configuration: a TOML file decoded into typed structs.

Loading never stops at the first mistake: every problem is reported on its own line
as ``FILE: KEY: expected WHAT, found WHAT`` so an operator fixes them in one pass.
"""

from __future__ import annotations

import hashlib
import tomllib
import types
import typing
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import Meta, Struct

# Defined in execd.model.errors (the one hierarchy), and imported from here by config users.
from execd.model.errors import ConfigError as ConfigError
from execd.model.errors import ConfigProblem as ConfigProblem
from execd.model.errors import FileRefused
from execd.model.files import read_regular
from execd.model.messages import Plane
from execd.model.reasons import EXECUTION_REJECTED
from execd.reader.inbox import Lakehouse

Positive = Annotated[int, Meta(ge=1)]


class DaemonConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """Where the daemon reads and writes. Relative paths are taken from the working directory."""

    lakehouse: str
    ledger_dir: str
    poll_interval_ms: Annotated[int, Meta(ge=1, le=60_000)] = 100
    # An inbox file is claimed only once its inode, size and times have not changed
    # for this long: a producer writing in place is not read half-written.
    settle_ms: Annotated[int, Meta(ge=0, le=600_000)] = 250


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

    max_line_bytes: Annotated[int, Meta(ge=256)] = 1 << 20
    # Each lakehouse context file (runs, regime, prices, overrides): a larger one is a
    # context problem (fail closed), not a read of unbounded size.
    max_context_bytes: Annotated[int, Meta(ge=4096, le=1 << 30)] = 64 << 20


class LedgerConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """Ledger storage."""

    segment_bytes: Annotated[int, Meta(ge=4096)] = 256 << 20
    # How often head.json, the witness that the ledger was not cut at its end, is
    # refreshed (0: after every commit), and how often the head is logged.
    head_interval_ms: Annotated[int, Meta(ge=0, le=3_600_000)] = 1_000
    head_log_ms: Annotated[int, Meta(ge=1_000, le=86_400_000)] = 60_000


class LogConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """Logging. ``outcomes``: "each" logs every durable outcome, "summary" one line a commit."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    outcomes: Literal["each", "summary"] = "each"


class GovernanceConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """Execution plans (seed 003).

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
    """Limits per venue (or for every venue). Windows are in clock units."""

    max_leverage: Decimal | None = None
    equity: Decimal | None = None
    max_orders: Positive | None = None
    rate_window: Positive | None = None
    failure_limit: Positive | None = None
    failure_window: Positive | None = None
    cooldown: Positive | None = None


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


class ControlConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """The control socket that ``execd ctl`` talks to.

    Created mode 0600 (owner only), or 0660 with ``group_access`` so an operators'
    group can use it. ``timeout_ms`` bounds how long a command may take before the
    client hears "not confirmed"; ``max_clients`` bounds the connections served at
    once (each holds a file descriptor: a client beyond it is refused "busy" at
    once); ``request_timeout_ms`` is how long a client may take to send its request
    line, so idle connections give their slot back; ``accept_retry_ms`` is the pause
    before accepting again after the process ran out of file descriptors or memory.
    """

    socket: str = "var/run/execd.sock"
    group_access: bool = False
    timeout_ms: Annotated[int, Meta(ge=10, le=600_000)] = 10_000
    max_clients: Annotated[int, Meta(ge=1, le=1024)] = 32
    request_timeout_ms: Annotated[int, Meta(ge=10, le=600_000)] = 2_000
    accept_retry_ms: Annotated[int, Meta(ge=1, le=60_000)] = 100


class MetricsConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """The Prometheus endpoint: ``listen`` is ``HOST:PORT`` on a loopback address.

    The endpoint has no authentication, so it is never served beyond this host.
    """

    listen: str
    # Each scrape holds a thread and a file descriptor: bounded, and idle ones dropped.
    max_clients: Annotated[int, Meta(ge=1, le=256)] = 8
    client_timeout_ms: Annotated[int, Meta(ge=100, le=60_000)] = 5_000


Millis = Annotated[int, Meta(ge=1, le=86_400_000)]


class CcxtConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """A real exchange through ccxt (``adapter = "ccxt"``).

    Credentials come from exactly one of ``credentials_file`` (JSON with apiKey and
    secret), ``credentials_env`` (PREFIX_API_KEY and PREFIX_SECRET) or
    ``credentials_credential`` (a systemd credential holding that JSON). They are
    never logged nor written to the ledger.
    """

    exchange: Annotated[str, Meta(pattern="^[a-z0-9_]+$")]
    credentials_file: str | None = None
    credentials_env: Annotated[str, Meta(pattern="^[A-Z_][A-Z0-9_]*$")] | None = None
    credentials_credential: str | None = None
    # Another API host (a testnet, or a local test exchange): every API URL keeps
    # its path and gets this scheme and host.
    base_url: Annotated[str, Meta(pattern="^https?://[^/]+$")] | None = None
    rate_limit_ms: Annotated[int, Meta(ge=0, le=60_000)] = 50
    timeout_ms: Millis = 10_000
    max_in_flight: Annotated[int, Meta(ge=1, le=1024)] = 8
    backlog: Annotated[int, Meta(ge=0, le=100_000)] = 64
    poll_interval_ms: Millis = 500
    # Follow orders by the exchange's private order stream (ccxt.pro watchOrders)
    # where ccxt offers it, polling beside it; off: polling alone.
    stream: bool = True
    # The first wait before opening the stream again after it failed (then doubling,
    # up to 30 s).
    stream_retry_ms: Annotated[int, Meta(ge=10, le=600_000)] = 1_000
    order_timeout_ms: Millis = 30_000
    lookup_delay_ms: Annotated[int, Meta(ge=0, le=600_000)] = 1_000
    # How late the venue may still act on a request it has not answered: "no such
    # order" is trusted only once this has passed since the send (Binance: execd
    # sets recvWindow to half of it; the other half covers clock skew).
    acceptance_window_ms: Annotated[int, Meta(ge=100, le=120_000)] = 10_000
    # Seed 000: execution never retries on its own. One send by default; more is an
    # explicit choice (each after a lookup found no such order, each recorded).
    send_attempts: Annotated[int, Meta(ge=1, le=10)] = 1
    # At start-up, an order an earlier run recorded but the venue never received is
    # sent again only if younger than this (0: never), within send_attempts in all.
    resend_window_ms: Annotated[int, Meta(ge=0, le=86_400_000)] = 0
    # How long a stop follows orders already sent before leaving them in doubt for
    # the next start; keep it under the unit's TimeoutStopSec (90 s).
    drain_timeout_ms: Annotated[int, Meta(ge=100, le=600_000)] = 60_000
    slippage_bps: Annotated[int, Meta(ge=0, le=10_000)] = 50
    # A final order whose own structure lacks the fees of part of its fill (Binance's
    # GET /api/v3/order has none) has its trades read, at most this many times (0:
    # never), fee_read_pause_ms apart, while they add up to less than the fill: the
    # venue's trade list can lag the order. Short of that, the fees are incomplete.
    fee_reads: Annotated[int, Meta(ge=0, le=10)] = 3
    fee_read_pause_ms: Annotated[int, Meta(ge=0, le=60_000)] = 500
    client_order_prefix: Annotated[str, Meta(pattern="^[A-Za-z0-9]{0,8}$")] = "x"
    client_order_id_length: Annotated[int, Meta(ge=24, le=64)] = 32
    options: dict[str, Any] = {}


class VenueConfig(Struct, frozen=True, forbid_unknown_fields=True):
    """One venue: its plane and the adapter that serves it.

    ``plane = "paper"`` uses the paper adapter. ``plane = "live"`` needs an explicit
    ``adapter``: ``ccxt`` trades on a real exchange (the ``ccxt`` table says which
    and how); ``stub`` is seed 000's deterministic live stub (no I/O), which either
    fills every intent or fails every intent with ``stub_reason``.
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

    @property
    def adapter_kind(self) -> str:
        """The adapter that serves this venue."""
        return self.adapter or ("paper" if self.plane == "paper" else "")


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

    @property
    def lakehouse(self) -> Lakehouse:
        """The lakehouse directories (inbox, work, archive, rejected)."""
        return Lakehouse(Path(self.daemon.lakehouse))

    def planes(self) -> dict[str, Plane]:
        """Venue name to plane, sorted by venue, as recorded in the ledger."""
        return {name: self.venues[name].plane for name in sorted(self.venues)}


class LoadedConfig(Struct, frozen=True):
    """A valid config and the digest of the bytes it came from."""

    path: str
    config: Config
    sha256: str


# The config file, and each key and credential file, is read whole; no real one is
# near these sizes, and a file that is (or a FIFO, a device) is refused, not read.
MAX_CONFIG_BYTES: Final = 4 << 20
MAX_SECRET_BYTES: Final = 64 << 10


def load(path: str | Path) -> LoadedConfig:
    """Read and check ``path``; raise ConfigError listing every problem found.

    Blocking file I/O, but never blocked by what the path names: only a regular file
    of at most MAX_CONFIG_BYTES is read (see :mod:`execd.model.files`). Call it from a
    worker thread in a running daemon.
    """
    name = str(path)
    try:
        raw = read_regular(path, MAX_CONFIG_BYTES, "TOML file")
    except FileRefused as exc:
        raise ConfigError([ConfigProblem(name, "(file)", exc.expected, exc.found)]) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [ConfigProblem(name, "(file)", "UTF-8 text", f"invalid byte at {exc.start}")]
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([ConfigProblem(name, "(syntax)", "valid TOML", str(exc))]) from None
    except RecursionError:
        # tomllib recurses per nested array or inline table; where it gives up depends
        # on the stack it runs on, so the message names no depth.
        raise ConfigError([ConfigProblem(name, "(syntax)", "valid TOML",
                                         "arrays or tables nested too deep to read")]) from None
    problems: list[ConfigProblem] = []
    _check_struct(Config, data, "", name, problems)
    if not problems:
        config = msgspec.convert(data, Config)
        _check_meaning(config, name, problems)
    if problems:
        raise ConfigError(problems)
    return LoadedConfig(name, config, hashlib.sha256(raw).hexdigest())


def _check_meaning(config: Config, file: str, problems: list[ConfigProblem]) -> None:
    """Rules that span keys, which the types alone cannot say."""
    if not config.venues:
        problems.append(ConfigProblem(file, "venues", "at least one venue table", "none"))
    for name, venue in sorted(config.venues.items()):
        key = f"venues.{name}.adapter"
        if venue.plane == "paper" and venue.adapter not in (None, "paper"):
            problems.append(
                ConfigProblem(
                    file, key, '"paper" (or nothing) on the paper plane', repr(venue.adapter)
                )
            )
        if venue.plane == "live" and venue.adapter in (None, "paper"):
            problems.append(
                ConfigProblem(
                    file, key, 'a live adapter ("ccxt" or "stub") on the live plane',
                    repr(venue.adapter)
                )
            )
        if venue.confirm_live and venue.plane != "live":
            problems.append(ConfigProblem(file, f"venues.{name}.confirm_live",
                                          'confirm_live only with plane = "live"',
                                          f"plane = {venue.plane!r}"))
        _check_ccxt(config, name, venue, file, problems)
        _check_limits(venue.limits, f"venues.{name}.limits", file, problems)
        for symbol, limits in sorted(venue.symbols.items()):
            _check_limits(limits, f'venues.{name}.symbols."{symbol}"', file, problems)
    _check_limits(config.risk.limits, "risk.limits", file, problems)
    risk = config.risk
    signed_planes = {"none": set(), "live": {"live"}, "all": {"paper", "live"}}[risk.signatures]
    needs_key = any(v.plane in signed_planes for v in config.venues.values())
    if needs_key and not (risk.key_file or risk.key_credential):
        problems.append(ConfigProblem(
            file, "risk.key_file", f"a key file or risk.key_credential (signatures = "
            f"{risk.signatures!r} covers a configured venue)", "neither"))
    if config.metrics is not None:
        from execd.service.metrics import parse_listen  # imported here: prometheus_client

        try:
            parse_listen(config.metrics.listen)
        except ValueError as exc:
            problems.append(ConfigProblem(file, "metrics.listen", "HOST:PORT on a loopback "
                                          "address (127.0.0.1:9464, [::1]:9464)", str(exc)))
    sock = config.control.socket
    if len(sock.encode("utf-8", "surrogateescape")) > 107:
        # AF_UNIX paths are at most 108 bytes with the terminating NUL: bind would fail.
        problems.append(ConfigProblem(file, "control.socket", "a path of at most 107 bytes "
                                      "(the limit of a unix socket's address)",
                                      f"{len(sock.encode('utf-8', 'surrogateescape'))} bytes"))
    if risk.key_file and risk.key_credential:
        problems.append(ConfigProblem(file, "risk.key_credential",
                                      "only one of risk.key_file and risk.key_credential",
                                      "both"))


def _check_ccxt(config: Config, name: str, venue: VenueConfig, file: str,
                problems: list[ConfigProblem]) -> None:
    """A ccxt venue needs its table and one credential source.

    Any clock will do: logical time is the externally provided one on every plane
    (seed 000), and live records carry the wall-clock time beside it.
    """
    prefix = f"venues.{name}.ccxt"
    if venue.adapter != "ccxt":
        if venue.ccxt is not None:
            problems.append(ConfigProblem(file, prefix, 'no ccxt table unless adapter = "ccxt"',
                                          "a ccxt table"))
        return
    table = venue.ccxt
    if table is None:
        problems.append(ConfigProblem(file, prefix, 'a ccxt table (adapter = "ccxt")',
                                      "none"))
        return
    # Imported only here: ccxt costs 0.4 s and 100 MB, which paper-only configs skip.
    import ccxt

    if table.exchange not in ccxt.exchanges:
        problems.append(ConfigProblem(file, f"{prefix}.exchange", "a ccxt exchange id",
                                      repr(table.exchange)))
    elif getattr(ccxt, table.exchange)().precisionMode == ccxt.SIGNIFICANT_DIGITS:
        problems.append(ConfigProblem(
            file, f"{prefix}.exchange", "an exchange whose precision is a step size or a "
            "number of decimals", f"{table.exchange} (significant digits)"))
    else:
        _check_exchange(table, prefix, file, problems)
    sources = [k for k in ("credentials_file", "credentials_env", "credentials_credential")
               if getattr(table, k)]
    if len(sources) != 1:
        problems.append(ConfigProblem(
            file, f"{prefix}.credentials_file", "exactly one of credentials_file, "
            "credentials_env, credentials_credential", ", ".join(sources) or "none"))


def _check_exchange(table: CcxtConfig, prefix: str, file: str,
                    problems: list[ConfigProblem]) -> None:
    """An exchange execd can trade on safely, with client order ids it accepts."""
    from execd.venues.ccxt import exchanges

    spec = exchanges.exchange(table.exchange)
    if spec.unsafe is not None:
        problems.append(ConfigProblem(
            file, f"{prefix}.exchange", "an exchange execd can trade on safely ("
            + ", ".join(sorted(exchanges.SUPPORTED)) + ")",
            f"{table.exchange}: {spec.unsafe}"))
    elif table.client_order_id_length > spec.client_id_max:
        problems.append(ConfigProblem(
            file, f"{prefix}.client_order_id_length",
            f"at most {spec.client_id_max} ({table.exchange}'s limit on a client order id)",
            str(table.client_order_id_length)))


# Keys that only mean something together: (key, what it needs).
_LIMIT_PAIRS = (
    ("max_leverage", "equity"),
    ("max_orders", "rate_window"),
    ("rate_window", "max_orders"),
    ("failure_limit", "failure_window"),
    ("failure_limit", "cooldown"),
    ("failure_window", "failure_limit"),
    ("cooldown", "failure_limit"),
)


def _check_limits(limits: SymbolLimits, prefix: str, file: str,
                  problems: list[ConfigProblem]) -> None:
    """Amounts must be positive numbers; some keys need a partner key beside them."""
    for field in msgspec.structs.fields(limits):
        value = getattr(limits, field.name)
        if isinstance(value, Decimal) and not (value.is_finite() and value > 0):
            problems.append(ConfigProblem(file, f"{prefix}.{field.name}",
                                          "a positive decimal number", str(value)))
    for key, partner in _LIMIT_PAIRS:
        if getattr(limits, key, None) is not None and getattr(limits, partner, None) is None:
            problems.append(ConfigProblem(file, f"{prefix}.{partner}",
                                          f"a value (it goes with {prefix}.{key})",
                                          "nothing (missing)"))


def _describe(tp: Any) -> str:
    """A short human name for a field type."""
    origin = typing.get_origin(tp)
    if origin is Annotated:
        base, *metas = typing.get_args(tp)
        bounds = []
        for meta in metas:
            if isinstance(meta, Meta):
                if meta.ge is not None:
                    bounds.append(f">= {meta.ge}")
                if meta.le is not None:
                    bounds.append(f"<= {meta.le}")
                if meta.min_length:
                    bounds.append("non-empty")
                if meta.pattern is not None:
                    bounds.append(f"matching {meta.pattern}")
        return " ".join([_describe(base), *bounds])
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "nothing"
    if isinstance(tp, type) and issubclass(tp, Struct):
        return "a table"
    if origin is dict:
        return "a table"
    if origin is tuple:
        return "an array"
    return {int: "an integer", str: "a string", bool: "true or false", float: "a number",
            Decimal: "a decimal number (string or number)"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _found(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    return f"{type(value).__name__} {value!r}"


def _struct_type(tp: Any) -> type[Struct] | None:
    """The table type of a field: a Struct, or an optional one (TOML has no null)."""
    if isinstance(tp, type) and issubclass(tp, Struct):
        return tp
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        tables = [t for t in typing.get_args(tp) if t is not type(None)]
        if len(tables) == 1:
            return _struct_type(tables[0])
    return None


def _check_struct(
    cls: type[Struct], data: Any, prefix: str, file: str, problems: list[ConfigProblem]
) -> None:
    """Check ``data`` against ``cls`` field by field, collecting every problem."""
    here = prefix.rstrip(".") or "(top level)"
    if not isinstance(data, Mapping):
        problems.append(ConfigProblem(file, here, "a table", _found(data)))
        return
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = {f.name: f for f in msgspec.structs.fields(cls)}
    for key in data:
        if key not in fields:
            problems.append(
                ConfigProblem(file, f"{prefix}{key}", "one of " + ", ".join(fields), "unknown key")
            )
    for name, field in fields.items():
        key = f"{prefix}{name}"
        tp = hints[name]
        if name not in data:
            if field.required:
                problems.append(ConfigProblem(file, key, _describe(tp), "nothing (missing)"))
            continue
        value = data[name]
        sub = _struct_type(tp)
        if sub is not None:
            _check_struct(sub, value, f"{key}.", file, problems)
            continue
        if typing.get_origin(tp) is dict:
            key_tp, value_tp = typing.get_args(tp)
            sub = _struct_type(value_tp)
            if not isinstance(value, Mapping):
                problems.append(ConfigProblem(file, key, "a table", _found(value)))
                continue
            for item_key, item in value.items():
                try:
                    msgspec.convert(item_key, key_tp)
                except msgspec.ValidationError:
                    problems.append(
                        ConfigProblem(file, f"{key}.{item_key}", _describe(key_tp), repr(item_key))
                    )
                if sub is not None:
                    _check_struct(sub, item, f"{key}.{item_key}.", file, problems)
            continue
        try:
            msgspec.convert(value, tp)
        except msgspec.ValidationError:
            problems.append(ConfigProblem(file, key, _describe(tp), _found(value)))
