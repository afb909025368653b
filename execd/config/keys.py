"""What each config key means, declared once, beside the schema.

For every key of :mod:`execd.config.schema` (a dotted path; ``*`` stands for one
venue or symbol name) this says:

- whether a reload (SIGHUP, ``execd ctl reload``) applies it, and if not, why it
  needs a restart: the reason ``reload`` prints (docs/ARCHITECTURE.md, "Reload");
- whether it is part of the outcome-settings digest that the ``start`` and ``config``
  records carry (:mod:`execd.config.digest`): only settings that decide outcomes are,
  so replays with other queue and batch sizes stay byte-identical (docs/ARCHITECTURE.md,
  "Determinism");
- whether its value may be a secret, which a reload's record shows as ``"***"``.

Besides the leaves, three kinds of keys are tables as a whole, because a reload can
add or remove them: a venue (``venues.*``), a symbol (``venues.*.symbols.*``) and an
optional table (``metrics``, ``venues.*.ccxt``). ``tests/unit/config/test_keys.py``
walks the schema and fails for a key declared twice, for one not declared, and for a
declaration that names no key.
"""

from __future__ import annotations

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
    secret: bool = False

    @property
    def reloadable(self) -> bool:
        """A reload applies a change of this key while the daemon runs."""
        return self.restart is None


def live(path: str, digest: Digest = "out", *, secret: bool = False) -> Key:
    """A key that a reload applies."""
    return Key(path, None, digest, secret)


def fixed(path: str, why: str, digest: Digest = "out", *, secret: bool = False) -> Key:
    """A key fixed at start-up; ``why`` is the reason a reload that changes it prints."""
    return Key(path, why, digest, secret)


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
    live("log.level"),
    live("log.outcomes"),
    fixed("log.format", "the log format is chosen at start-up"),
    fixed("governance.ledger_dir", _GOVERNANCE),
    fixed("governance.enforce", _GOVERNANCE, "in"),
    fixed("governance.require_plan", _GOVERNANCE, "in"),
    live("risk.require_registered_run", "in"),
    live("risk.signatures", "in"),
    fixed("risk.key_file", _KEY, "in", secret=True),
    fixed("risk.key_credential", _KEY, "in", secret=True),
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
    # The ccxt table is digested whole when present: which exchange, and how it is
    # called, decide outcomes.
    fixed("venues.*.ccxt", _VENUE, "if_set", secret=True),
    fixed("venues.*.ccxt.exchange", _VENUE, "in"),
    fixed("venues.*.ccxt.credentials_file", _VENUE, "in", secret=True),
    fixed("venues.*.ccxt.credentials_env", _VENUE, "in", secret=True),
    fixed("venues.*.ccxt.credentials_credential", _VENUE, "in", secret=True),
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
    fixed("venues.*.ccxt.client_order_prefix", _VENUE, "in"),
    fixed("venues.*.ccxt.client_order_id_length", _VENUE, "in"),
    # Free-form options for ccxt, where an exchange's keys may sit.
    fixed("venues.*.ccxt.options", _VENUE, "in", secret=True),
)
"""Every key's declaration, in schema order: a new key goes here beside its struct field."""

BY_PATH: Final[dict[str, Key]] = {key.path: key for key in KEYS}
"""The declarations by their dotted path (``*`` for a name)."""

_BY_LENGTH: Final[dict[int, list[tuple[tuple[str, ...], Key]]]] = {}
for _key in KEYS:
    _parts = tuple(_key.path.split("."))
    _BY_LENGTH.setdefault(len(_parts), []).append((_parts, _key))

LOOKS_SECRET: Final = re.compile(r"(credential|secret|password|api_?key|key_file|options)",
                                 re.IGNORECASE)
"""A safety net under the ``secret`` flags: a key named like this is never shown,
even if its declaration forgot to say it may hold a secret."""


def find(key: str) -> Key | None:
    """The declaration a dotted key of a real config falls under, or None.

    ``venues.binance.limits.equity`` is ``venues.*.limits.equity``. A key below a
    declared one (inside ``options``, or in a venue or symbol whose name has a dot)
    falls under the longest declared key it starts with.
    """
    parts = key.split(".")
    for length in range(len(parts), 0, -1):
        head = parts[:length]
        for pattern, declared in _BY_LENGTH.get(length, ()):
            if all(p in ("*", name) for p, name in zip(pattern, head, strict=True)):
                return declared
    return None


def secret(key: str) -> bool:
    """Whether a dotted key's value may hold a secret, so it is never shown."""
    declared = find(key)
    return bool(LOOKS_SECRET.search(key)) or (declared is not None and declared.secret)
