"""Loading the config file: decode it, check it, and report every problem at once.

Loading never stops at the first mistake: every problem is reported on its own line
as ``FILE: KEY: expected WHAT, found WHAT`` so an operator fixes them in one pass
(README.md, "Configuration"). The types say what one key may hold
(:mod:`execd.config.schema`); the rules here that span keys say what the types cannot.

Before the types are checked, a duration key's string (``"250ms"``, ``"1.5s"``) is
turned into its bare integer in place (:mod:`execd.config.durations`), so the structs,
a reload's comparison and the outcome digest see ``"1s"`` and ``1000`` alike; a string
that is no such duration is a problem line with the value as written.

A problem line never prints a secret: for a key declared secret
(:func:`execd.config.keys.secret`, ``ccxt.options``) the "found" part is only the
value's type, and a string holding a URL with a user name or password is never
printed either. Lines reach the terminal, the socket's reply to a reload, the
``config.reload_refused`` log line and systemd's STATUS.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from execd.config import durations, keys
from execd.config.schema import (
    MAX_CONFIG_BYTES,
    CcxtConfig,
    Config,
    ConfigError,
    ConfigProblem,
    LoadedConfig,
    SymbolLimits,
    VenueConfig,
)
from execd.model.errors import FileRefused
from execd.model.files import read_regular


def load(path: str | Path) -> LoadedConfig:
    """Read and check ``path``; raise ConfigError listing every problem found.

    Blocking file I/O, but never blocked by what the path names: only a regular file
    of at most MAX_CONFIG_BYTES is read (see :mod:`execd.model.files`). Call it from a
    worker thread in a running daemon.
    """
    name = str(path)
    raw, data = read_toml(path, MAX_CONFIG_BYTES)
    problems: list[ConfigProblem] = []
    check_table(Config, data, "", name, problems, _clock_kind(data), ())
    if not problems:
        config = msgspec.convert(data, Config)
        _check_meaning(config, name, problems)
    policy = None
    if not problems and config.policies is not None:
        # Imported here: the policy file's checks import the schedule's, which loading a
        # config without policies has no use for.
        from execd.policy import file as policy_file

        try:
            policy = policy_file.load(config.policies.file)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return LoadedConfig(name, config, hashlib.sha256(raw).hexdigest(), policy)


def read_toml(path: str | Path, max_bytes: int) -> tuple[bytes, Any]:
    """A regular TOML file of at most ``max_bytes``: its bytes and its tables; ConfigError
    (one line) when it cannot be read or decoded. Blocking."""
    name = str(path)
    try:
        raw = read_regular(path, max_bytes, "TOML file")
    except FileRefused as exc:
        raise ConfigError([ConfigProblem(name, "(file)", exc.expected, exc.found)]) from None
    try:
        return raw, tomllib.loads(raw.decode("utf-8"))
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


def _clock_kind(data: Any) -> str:
    """``clock.kind`` as written (a wrong one is its own problem line): it says whether a
    window's clock units are nanoseconds, so whether a duration means anything there."""
    clock = data.get("clock") if isinstance(data, Mapping) else None
    kind = clock.get("kind", "logical") if isinstance(clock, Mapping) else "logical"
    return kind if isinstance(kind, str) else repr(kind)


def _duration_unit(tp: Any) -> tuple[durations.Unit, int | None, int | None] | None:
    """A duration key's unit and bounds, from its annotation (optional or not); None for
    any other key."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        found = [_duration_unit(t) for t in typing.get_args(tp) if t is not type(None)]
        return found[0] if len(found) == 1 else None
    if typing.get_origin(tp) is not Annotated:
        return None
    _, *metas = typing.get_args(tp)
    units = [m for m in metas if isinstance(m, durations.Unit)]
    if not units:
        return None
    bounds = [m for m in metas if isinstance(m, Meta)]
    ge = next((b.ge for b in bounds if b.ge is not None), None)
    le = next((b.le for b in bounds if b.le is not None), None)
    return units[0], int(ge) if ge is not None else None, int(le) if le is not None else None


def _read_duration(value: Any, tp: Any, clock: str) -> int | str | None:
    """A duration key's value as its bare integer, or what it expected (the problem).

    None: the value is left to the type check as it is (an integer, or anything on a
    key that is not a duration), so an integer's problem line reads as it always has.
    """
    found = _duration_unit(tp)
    if found is None or (isinstance(value, int) and not isinstance(value, bool)):
        return None
    unit, ge, le = found
    if unit.clock and clock != "wall":
        # Clock units on the logical clock are the producer's: "5m" has no meaning.
        return durations.logical_window(clock) if isinstance(value, str) else None
    if not isinstance(value, str):
        return durations.expected(unit, ge, le)
    try:
        return durations.parse(value, unit, ge, le)
    except ValueError as exc:
        return str(exc)


def _check_meaning(config: Config, file: str, problems: list[ConfigProblem]) -> None:
    """Rules that span keys, which the types alone cannot say."""
    if not config.venues:
        problems.append(ConfigProblem(file, "venues", "at least one venue table", "none"))
    for name, venue in sorted(config.venues.items()):
        # A name is written so that it reads back whole: venues."desk.a".plane.
        where = keys.dotted(("venues", name))
        key = f"{where}.adapter"
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
            problems.append(ConfigProblem(file, f"{where}.confirm_live",
                                          'confirm_live only with plane = "live"',
                                          f"plane = {venue.plane!r}"))
        _check_ccxt(config, name, venue, file, problems)
        tolerance = venue.drift.tolerance
        if tolerance is not None and not (tolerance.is_finite() and tolerance >= 0):
            problems.append(ConfigProblem(file, f"{where}.drift.tolerance",
                                          "a decimal number of at least 0", str(tolerance)))
        _check_limits(venue.limits, f"{where}.limits", file, problems)
        for symbol, limits in sorted(venue.symbols.items()):
            _check_limits(limits, keys.dotted(("venues", name, "symbols", symbol)), file,
                          problems)
    _check_limits(config.risk.limits, "risk.limits", file, problems)
    _check_routes(config, file, problems)
    for name, amount in sorted(config.allocations.items()):
        # As the lakehouse's allocations.json (reader/context.py): exponent at most 15.
        if not (amount.is_finite() and amount > 0 and amount.adjusted() <= 15):
            problems.append(ConfigProblem(file, keys.dotted(("allocations", name)),
                                          "a positive decimal number of at most 1e15",
                                          str(amount)))
    ledger = config.ledger
    if ledger.checkpoint_interval is not None and not ledger.checkpoint_records:
        # The seq rule is what bounds the commits waiting for the shadow fold.
        problems.append(ConfigProblem(
            file, "ledger.checkpoint_records", "at least 1 (ledger.checkpoint_interval adds "
            "checkpoints by time to those by seq; it cannot stand alone)", "0"))
    risk = config.risk
    needs_key = any(v.plane in risk.signed_planes for v in config.venues.values())
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


def _check_routes(config: Config, file: str, problems: list[ConfigProblem]) -> None:
    """A route lists configured venues, each once, and maps symbols only at them; its
    name is no venue's (an intent names one or the other)."""
    for name, route in sorted(config.routes.items()):
        where = keys.dotted(("routes", name))
        if name in config.venues:
            problems.append(ConfigProblem(file, where, "a name that is no venue's",
                                          f"venue {name!r}"))
        if not 1 <= len(route.venues) <= 16:
            problems.append(ConfigProblem(file, f"{where}.venues", "1 to 16 venues",
                                          str(len(route.venues))))
        bad = sorted(f"{venue}: {symbol!r} = {mapped!r}"
                     for venue, table in route.symbols.items()
                     for symbol, mapped in table.items()
                     if not (0 < len(symbol) <= 128 and 0 < len(mapped) <= 128))
        if bad:
            problems.append(ConfigProblem(file, f"{where}.symbols",
                                          "symbols of 1 to 128 characters", "; ".join(bad)))
        unknown = [v for v in route.venues if v not in config.venues]
        if unknown:
            problems.append(ConfigProblem(
                file, f"{where}.venues", f"venues of [venues] (known: "
                f"{', '.join(sorted(config.venues))})", ", ".join(unknown)))
        twice = sorted({v for v in route.venues if route.venues.count(v) > 1})
        if twice:
            problems.append(ConfigProblem(file, f"{where}.venues", "each venue once",
                                          ", ".join(twice)))
        strays = sorted(set(route.symbols) - set(route.venues))
        if strays:
            problems.append(ConfigProblem(file, f"{where}.symbols",
                                          "symbols only of the route's venues",
                                          ", ".join(strays)))


def _check_ccxt(config: Config, name: str, venue: VenueConfig, file: str,
                problems: list[ConfigProblem]) -> None:
    """A ccxt venue needs its table and one credential source.

    Any clock will do: logical time is the externally provided one on every plane,
    and live records carry the wall-clock time beside it (README.md, "The live plane").
    """
    prefix = keys.dotted(("venues", name, "ccxt"))
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
    if table.base_url is not None and _USERINFO.match(table.base_url):
        # ccxt names the URL in its errors, which reach logs and the ledger's outcomes.
        problems.append(ConfigProblem(
            file, f"{prefix}.base_url", "an http(s) URL with no user name or password "
            "(credentials go in credentials_file, credentials_env or credentials_credential)",
            _URL_WITH_USER))
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
    if origin is list:
        return f"an array of {_describe(typing.get_args(tp)[0])}"
    return {int: "an integer", str: "a string", bool: "true or false", float: "a number",
            Decimal: "a decimal number (string or number)"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


# A URL with user info (``https://user:password@host``): never printed.
_USERINFO = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*@")
_URL_WITH_USER = "a URL with a user name or password (not shown)"


def _found_at(parts: keys.Parts, value: Any) -> str:
    """What a problem line says was found at ``parts``: the value, unless it may be a
    secret (then only its type). A table that is no key (``risk.limits``) holds none."""
    if keys.find(parts) is not None and keys.secret(parts):
        return _kind(value)
    if isinstance(value, str) and _USERINFO.match(value):
        return _URL_WITH_USER
    return _found(value)


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, bool):
        return "true or false"
    name = {str: "a string", int: "an integer", float: "a number"}.get(type(value))
    return name or f"a {type(value).__name__}"


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


def check_table(
    cls: type[Struct], data: Any, prefix: str, file: str, problems: list[ConfigProblem],
    clock: str, parts: keys.Parts,
) -> None:
    """Check ``data`` against ``cls`` field by field, collecting every problem.

    A duration string is replaced in ``data`` by its integer (``clock``: ``clock.kind``
    as written, which says what a window's string may mean). ``parts``: where ``data``
    is, names whole, which says whether a value found may be shown.
    """
    here = prefix.rstrip(".") or "(top level)"
    if not isinstance(data, Mapping):
        problems.append(ConfigProblem(file, here, "a table", _found_at(parts, data)))
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
        at = (*parts, name)
        tp = hints[name]
        if name not in data:
            if field.required:
                problems.append(ConfigProblem(file, key, _describe(tp), "nothing (missing)"))
            continue
        value = data[name]
        sub = _struct_type(tp)
        if sub is not None:
            check_table(sub, value, f"{key}.", file, problems, clock, at)
            continue
        if typing.get_origin(tp) is dict:
            key_tp, value_tp = typing.get_args(tp)
            sub = _struct_type(value_tp)
            if not isinstance(value, Mapping):
                problems.append(ConfigProblem(file, key, "a table", _found_at(at, value)))
                continue
            for item_key, item in value.items():
                try:
                    msgspec.convert(item_key, key_tp)
                except msgspec.ValidationError:
                    problems.append(
                        ConfigProblem(file, keys.dotted((*at, str(item_key))), _describe(key_tp),
                                      repr(item_key))
                    )
                if sub is not None:
                    named = (*at, str(item_key))
                    check_table(sub, item, f"{keys.dotted(named)}.", file, problems, clock,
                                  named)
            continue
        read = _read_duration(value, tp, clock)
        if isinstance(read, str):
            problems.append(ConfigProblem(file, key, read, _found_at(at, value)))
            continue
        if read is not None:
            typing.cast("dict[str, Any]", data)[name] = read  # tomllib's tables are dicts
            continue
        try:
            msgspec.convert(value, tp)
        except msgspec.ValidationError:
            problems.append(ConfigProblem(file, key, _describe(tp), _found_at(at, value)))
