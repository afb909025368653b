"""What a config reload (SIGHUP, ``execd ctl reload``) may change while the daemon runs.

A reload is all or nothing: the keys that changed are listed, and if any of them
cannot change without a restart the whole new file is refused with the reason
for each, and the running config stays as it was.

Changeable in place: logging, risk limits and policies, per-venue and per-symbol
limits, and the ccxt settings that only pace or bound calls. Everything else —
paths, planes and adapters, the set of venues, the clock, queue and batch sizes,
keys and credentials, which exchange and which ids — is fixed at start-up.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from execd.config.schema import Config

# Dotted keys (``*`` is one venue name) that a reload may change.
# Pacing keys (max_orders, rate_window, failure_*, cooldown) are not: pacing counts
# only while it is configured, and start-up rebuilds it from the ledger, so only a
# restart gives it the history it would have had. Nor crisis_regimes: the context
# loader falls back to the first of them when the regime cannot be read.
_LIMITS = r"(max_order_notional|max_asset_exposure|price_band_bps|max_leverage|equity)"
_RELOADABLE = [
    r"log\..+",
    rf"risk\.limits\.{_LIMITS}",
    r"risk\.(require_registered_run|signatures)",
    rf"venues\.[^.]+\.limits\.{_LIMITS}",
    r"venues\.[^.]+\.symbols(\..+)?",
    r"venues\.[^.]+\.confirm_live",
    # Not rate_limit_ms: ccxt builds its throttler from it once.
    r"venues\.[^.]+\.ccxt\.(timeout_ms|poll_interval_ms|order_timeout_ms"
    r"|lookup_delay_ms|send_attempts|resend_window_ms|slippage_bps|fee_reads|fee_read_pause_ms)",
]
_reloadable = re.compile("|".join(f"(?:{p})" for p in _RELOADABLE))
_pacing = re.compile(r"(risk|venues\.[^.]+)\.limits\."
                     r"(max_orders|rate_window|failure_limit|failure_window|cooldown)")

# Why the rest needs a restart, by the first part of the key.
_WHY = {
    "daemon": "paths and polling are fixed at start-up",
    "clock": "the clock is chosen at start-up",
    "queues": "stream capacities are fixed at start-up",
    "batches": "batch sizes are fixed at start-up",
    "input": "input limits are fixed at start-up",
    "ledger": "ledger storage is fixed at start-up",
    "control": "the control socket is bound at start-up",
    "governance": "the plan ledger is opened at start-up",
    "metrics": "the metrics endpoint is bound at start-up",
    "risk": "the signing key is read once at start-up",
    "venues": "venues, planes, adapters, exchanges and credentials are fixed at start-up",
}


# Keys whose values are never written out, even masked by accident of a new key.
_SECRET = re.compile(r"(credential|secret|password|api_?key|key_file|options)", re.IGNORECASE)
_MISSING = None


def changed_keys(old: Config, new: Config) -> list[str]:
    """Every dotted key whose value differs between ``old`` and ``new``, sorted."""
    return sorted(changes(old, new))


def changes(old: Config, new: Config) -> dict[str, list[Any]]:
    """Every changed dotted key with ``[old value, new value]`` (None where unset).

    Secrets never appear: a key that could hold one shows ``"***"`` for both values.
    """
    found: dict[str, list[Any]] = {}
    _diff(msgspec.to_builtins(old), msgspec.to_builtins(new), "", found)
    return {key: (["***", "***"] if _SECRET.search(key) else found[key])
            for key in sorted(found)}


def _diff(old: Any, new: Any, prefix: str, found: dict[str, list[Any]]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in old.keys() | new.keys():
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in old or key not in new:
                found[path] = [old.get(key, _MISSING), new.get(key, _MISSING)]
            else:
                _diff(old[key], new[key], path, found)
    elif old != new:
        found[prefix] = [old, new]


def needs_restart(keys: list[str]) -> list[str]:
    """For each key a reload cannot apply: ``KEY: why``."""
    refused = []
    for key in keys:
        if _reloadable.fullmatch(key):
            continue
        if re.fullmatch(r"venues\.[^.]+", key):
            why = "the set of venues is fixed at start-up"
        elif _pacing.fullmatch(key):
            why = "pacing is rebuilt from the ledger at start-up only"
        elif key == "risk.crisis_regimes":
            why = "the regime read when regime.json cannot be is fixed at start-up"
        else:
            why = _WHY.get(key.split(".", 1)[0], "fixed at start-up")
        refused.append(f"{key}: {why}")
    return refused
