"""What each config key means, declared once, beside the schema.

For every key of :mod:`execd.config.schema` (a dotted path; ``*`` stands for one
venue or symbol name) this says:

- whether a reload (SIGHUP, ``execd ctl reload``) applies it, and if not, why it
  needs a restart: the reason ``reload`` prints (docs/ARCHITECTURE.md, "Reload");
- whether it is part of the outcome-settings digest that the ``start`` and ``config``
  records carry (:mod:`execd.config.digest`): only settings that decide outcomes are,
  so replays with other queue and batch sizes stay byte-identical (docs/ARCHITECTURE.md,
  "Determinism");
- whether its value may be a secret (``secret``: never shown, anywhere), or only names
  where one is kept (``reference``: a key file's path, a systemd credential's name, an
  environment prefix), which ``config show``/``diff`` show and a reload's record does not.

A key of a real config is a path of parts through the schema (:data:`Parts`): a venue or
symbol name is one part, whatever it holds ("desk.symbols" is a venue, never a venue
"desk" and a key "symbols"), so its rules are found by :func:`find` on the parts, never
on a dotted string; :func:`dotted` writes the parts for people and records, quoting a
name that holds a dot, and :func:`split` reads that back.

Besides the leaves, three kinds of keys are tables as a whole, because a reload can
add or remove them: a venue (``venues.*``), a symbol (``venues.*.symbols.*``) and an
optional table (``metrics``, ``venues.*.ccxt``). ``tests/unit/config/test_keys.py``
walks the schema and fails for a key declared twice, for one not declared, and for a
declaration that names no key.
"""

from __future__ import annotations

import json
import re
from typing import Final, Literal

from msgspec import Struct

Digest = Literal["out", "in", "if_set"]
"""How a key takes part in the outcome digest.

``out``: never (it cannot change a byte of the ledger). ``in``: always. ``if_set``:
only while it holds something other than its default, because it came after the
first release: a config that does not use it keeps its digest, and paper ledgers
recorded before it keep their bytes.
"""


class Key(Struct, frozen=True):
    """What one key means: for a reload, for the outcome digest, for what is shown."""

    path: str
    # Why a reload cannot apply it (the line reload prints); None: a reload applies it.
    restart: str | None
    digest: Digest = "out"
    # Its value may be a secret: "***" wherever it is shown or recorded.
    secret: bool = False
    # It names where a secret is kept (a path, a credential's name, a variable prefix):
    # shown to the operator (config show, diff, the socket's config), but a reload's
    # record says only that it changed.
    reference: bool = False

    @property
    def reloadable(self) -> bool:
        """A reload applies a change of this key while the daemon runs."""
        return self.restart is None

    @property
    def parts(self) -> Parts:
        """The declared path as parts, ``*`` for a venue or symbol name."""
        return tuple(self.path.split("."))


Parts = tuple[str, ...]
"""A key of a real config: its path through the schema, one part per table or name."""


def live(path: str, digest: Digest = "out", *, secret: bool = False) -> Key:
    """A key that a reload applies."""
    return Key(path, None, digest, secret)


def fixed(path: str, why: str, digest: Digest = "out", *, secret: bool = False,
          reference: bool = False) -> Key:
    """A key fixed at start-up; ``why`` is the reason a reload that changes it prints."""
    return Key(path, why, digest, secret, reference)


_PATHS = "paths and polling are fixed at start-up"
_CLOCK = "the clock is chosen at start-up"
_QUEUES = "stream capacities are fixed at start-up"
_BATCHES = "batch sizes are fixed at start-up"
_INPUT = "input limits are fixed at start-up"
_LEDGER = "ledger storage is fixed at start-up"
_CONTROL = "the control socket is bound at start-up"
_GOVERNANCE = "the plan ledger is opened at start-up"
_METRICS = "the metrics endpoint is bound at start-up"
_KEY = "the signing key is read once at start-up"
_VENUE = "venues, planes, adapters, exchanges and credentials are fixed at start-up"
_VENUES = "the set of venues is fixed at start-up"
# Pacing counts only while it is configured, and start-up rebuilds it from the
# ledger, so only a restart gives it the history it would have had.
_PACING = "pacing is rebuilt from the ledger at start-up only"
# The context loader falls back to the first of them when regime.json cannot be read.
_REGIME = "the regime read when regime.json cannot be is fixed at start-up"

KEYS: Final[tuple[Key, ...]] = (
    fixed("daemon.lakehouse", _PATHS),
    fixed("daemon.ledger_dir", _PATHS),
    fixed("daemon.poll_interval_ms", _PATHS),
    fixed("daemon.settle_ms", _PATHS),
    fixed("clock.kind", _CLOCK, "in"),
    fixed("queues.sentinel", _QUEUES),
    fixed("queues.router", _QUEUES),
    fixed("queues.adapter", _QUEUES),
    fixed("queues.ledger", _QUEUES),
    fixed("queues.commits", _QUEUES),
    fixed("queues.files", _QUEUES),
    fixed("batches.read_chunk_bytes", _BATCHES),
    fixed("batches.items", _BATCHES),
    fixed("batches.commit_records", _BATCHES),
    fixed("input.max_line_bytes", _INPUT, "in"),
    fixed("input.max_context_bytes", _INPUT, "in"),
    fixed("ledger.segment_bytes", _LEDGER),
    fixed("ledger.head_interval_ms", _LEDGER),
    fixed("ledger.head_log_ms", _LEDGER),
    fixed("ledger.checkpoint_records", _LEDGER),
    fixed("ledger.checkpoint_interval", _LEDGER),
    fixed("ledger.checkpoints_kept", _LEDGER),
    fixed("ledger.checkpoint_timeout_ms", _LEDGER),
    live("log.level"),
    live("log.outcomes"),
    fixed("log.format", "the log format is chosen at start-up"),
    fixed("governance.ledger_dir", _GOVERNANCE),
    fixed("governance.enforce", _GOVERNANCE, "in"),
    fixed("governance.require_plan", _GOVERNANCE, "in"),
    live("risk.require_registered_run", "in"),
    live("risk.signatures", "in"),
    fixed("risk.key_file", _KEY, "in", reference=True),
    fixed("risk.key_credential", _KEY, "in", reference=True),
    fixed("risk.crisis_regimes", _REGIME, "in"),
    live("risk.limits.max_order_notional", "in"),
    live("risk.limits.max_asset_exposure", "in"),
    live("risk.limits.price_band_bps", "in"),
    live("risk.limits.max_leverage", "in"),
    live("risk.limits.equity", "in"),
    fixed("risk.limits.max_orders", _PACING, "in"),
    fixed("risk.limits.rate_window", _PACING, "in"),
    fixed("risk.limits.failure_limit", _PACING, "in"),
    fixed("risk.limits.failure_window", _PACING, "in"),
    fixed("risk.limits.cooldown", _PACING, "in"),
    fixed("control.socket", _CONTROL),
    fixed("control.group_access", _CONTROL),
    fixed("control.timeout_ms", _CONTROL),
    fixed("control.max_clients", _CONTROL),
    fixed("control.request_timeout_ms", _CONTROL),
    fixed("control.accept_retry_ms", _CONTROL),
    # The policy file's path: its content is digested (by its SHA-256), not its name.
    live("policies"),
    live("policies.file"),
    live("routes.*", "if_set"),
    live("routes.*.venues", "if_set"),
    live("routes.*.symbols", "if_set"),
    live("allocations", "if_set"),
    fixed("audit.files", "the audit files are kept (or not) from start-up"),
    fixed("audit.interval_ms", "the audit files' interval is fixed at start-up"),
    fixed("metrics", _METRICS),
    fixed("metrics.listen", _METRICS),
    fixed("metrics.max_clients", _METRICS),
    fixed("metrics.client_timeout_ms", _METRICS),
    fixed("metrics.stuck_after_ms", _METRICS),
    # A venue's whole table: its name is in every record that concerns it.
    fixed("venues.*", _VENUES, "in", secret=True),
    fixed("venues.*.plane", _VENUE, "in"),
    fixed("venues.*.adapter", _VENUE, "in"),
    live("venues.*.confirm_live", "if_set"),
    fixed("venues.*.stub_result", _VENUE, "in"),
    fixed("venues.*.stub_reason", _VENUE, "in"),
    live("venues.*.limits.max_order_notional", "in"),
    live("venues.*.limits.max_asset_exposure", "in"),
    live("venues.*.limits.price_band_bps", "in"),
    live("venues.*.limits.max_leverage", "in"),
    live("venues.*.limits.equity", "in"),
    fixed("venues.*.limits.max_orders", _PACING, "in"),
    fixed("venues.*.limits.rate_window", _PACING, "in"),
    fixed("venues.*.limits.failure_limit", _PACING, "in"),
    fixed("venues.*.limits.failure_window", _PACING, "in"),
    fixed("venues.*.limits.cooldown", _PACING, "in"),
    live("venues.*.symbols.*", "in"),
    live("venues.*.symbols.*.max_order_notional", "in"),
    live("venues.*.symbols.*.max_asset_exposure", "in"),
    live("venues.*.symbols.*.price_band_bps", "in"),
    # Left out at their defaults: a config without them digests as before.
    live("venues.*.drift.tolerance", "if_set"),
    live("venues.*.drift.action", "if_set"),
    live("venues.*.drift.baseline", "if_set"),
    live("venues.*.drift.ignore", "if_set"),
    # The ccxt table is digested whole when present: which exchange, and how it is
    # called, decide outcomes.
    fixed("venues.*.ccxt", _VENUE, "if_set", secret=True),
    fixed("venues.*.ccxt.exchange", _VENUE, "in"),
    fixed("venues.*.ccxt.credentials_file", _VENUE, "in", reference=True),
    fixed("venues.*.ccxt.credentials_env", _VENUE, "in", reference=True),
    fixed("venues.*.ccxt.credentials_credential", _VENUE, "in", reference=True),
    fixed("venues.*.ccxt.base_url", _VENUE, "in"),
    # ccxt builds its throttler from it once.
    fixed("venues.*.ccxt.rate_limit_ms", _VENUE, "in"),
    live("venues.*.ccxt.timeout_ms", "in"),
    fixed("venues.*.ccxt.max_in_flight", _VENUE, "in"),
    fixed("venues.*.ccxt.backlog", _VENUE, "in"),
    live("venues.*.ccxt.poll_interval_ms", "in"),
    fixed("venues.*.ccxt.stream", _VENUE, "in"),
    fixed("venues.*.ccxt.stream_retry_ms", _VENUE, "in"),
    live("venues.*.ccxt.order_timeout_ms", "in"),
    live("venues.*.ccxt.lookup_delay_ms", "in"),
    fixed("venues.*.ccxt.acceptance_window_ms", _VENUE, "in"),
    live("venues.*.ccxt.send_attempts", "in"),
    live("venues.*.ccxt.resend_window_ms", "in"),
    fixed("venues.*.ccxt.drain_timeout_ms", _VENUE, "in"),
    live("venues.*.ccxt.slippage_bps", "in"),
    live("venues.*.ccxt.fee_reads", "in"),
    live("venues.*.ccxt.fee_read_pause_ms", "in"),
    # What it finds is recorded (venue_status), not when it looks.
    live("venues.*.ccxt.markets_refresh_ms"),
    live("venues.*.ccxt.holdings_ms"),
    fixed("venues.*.ccxt.client_order_prefix", _VENUE, "in"),
    fixed("venues.*.ccxt.client_order_id_length", _VENUE, "in"),
    # Free-form options for ccxt, where an exchange's keys may sit.
    fixed("venues.*.ccxt.options", _VENUE, "in", secret=True),
)
"""Every key's declaration, in schema order: a new key goes here beside its struct field."""

BY_PATH: Final[dict[str, Key]] = {key.path: key for key in KEYS}
"""The declarations by their dotted path (``*`` for a name)."""

_BY_LENGTH: Final[dict[int, list[Key]]] = {}
for _key in KEYS:
    _BY_LENGTH.setdefault(len(_key.parts), []).append(_key)

LOOKS_SECRET: Final = re.compile(r"(credential|secret|password|api_?key|key_file|options)",
                                 re.IGNORECASE)
"""A safety net under the ``secret`` flags: a key whose declared path (field names only,
``*`` for names) reads like this is never shown unless declared ``reference``. It never
meets a venue's or a symbol's name: those are the operator's, and say nothing."""


def find(parts: Parts) -> Key | None:
    """The declaration the key at ``parts`` of a real config falls under, or None.

    ``("venues", "desk.symbols", "plane")`` is ``venues.*.plane``: a ``*`` stands for one
    part, whatever it holds. A key below a declared leaf (inside ``options``) falls under
    the longest declared key it starts with.
    """
    for length in range(len(parts), 0, -1):
        head = parts[:length]
        for declared in _BY_LENGTH.get(length, ()):
            if all(p in ("*", name) for p, name in zip(declared.parts, head, strict=True)):
                return declared
    return None


def secret(parts: Parts) -> bool:
    """Whether the value at ``parts`` may hold a secret, so it is never shown.

    An undeclared key is one (fail closed); so is one whose declaration says so, or whose
    declared path reads like a secret without being declared a reference.
    """
    declared = find(parts)
    if declared is None:
        return True
    return declared.secret or (not declared.reference and bool(LOOKS_SECRET.search(declared.path)))


def unrecorded(parts: Parts) -> bool:
    """Whether a reload's record shows ``"***"`` for the value at ``parts``: a secret, or
    a reference to one (where a key or credential is kept is the operator's business,
    not every ledger reader's)."""
    declared = find(parts)
    return secret(parts) or (declared is not None and declared.reference)


# A part written as it is: no dot, no quote, no space or control character, not empty.
_BARE: Final = re.compile(r'[^."\s]+')


def dotted(parts: Parts) -> str:
    """``parts`` for people and records: ``venues.binance.symbols.BTC/USDT.price_band_bps``,
    with a part that holds a dot, a quote or a space JSON-quoted (``venues."desk.a".plane``)
    so the key reads back to the same parts (:func:`split`)."""
    return ".".join(p if _BARE.fullmatch(p) and p.isprintable() else
                    json.dumps(p, ensure_ascii=False) for p in parts)


def split(key: str) -> Parts:
    """The parts of a key :func:`dotted` wrote (a plain dotted key splits at its dots).

    Raises ValueError for a quoted part that is not a JSON string or not followed by a dot.
    """
    parts: list[str] = []
    at = 0
    decoder = json.JSONDecoder()
    while True:
        if key.startswith('"', at):
            part, at = decoder.raw_decode(key, at)
            if at < len(key) and key[at] != ".":
                raise ValueError(f"{key!r}: a quoted part must end the key or a dot follow it")
            parts.append(part)
        else:
            end = key.find(".", at)
            end = len(key) if end < 0 else end
            parts.append(key[at:end])
            at = end
        if at >= len(key):
            return tuple(parts)
        at += 1
