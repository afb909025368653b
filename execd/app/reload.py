"""What a config reload (SIGHUP, ``execd ctl reload``) may change while the daemon runs.

A reload is all or nothing: the keys that changed are listed, and if any of them
cannot change without a restart the whole new file is refused with the reason
for each, and the running config stays as it was.

Changeable in place: logging, risk limits and policies, per-venue and per-symbol
limits, and the ccxt settings that only pace or bound calls. Everything else —
paths, planes and adapters, the set of venues, the clock, queue and batch sizes,
keys and credentials, which exchange and which ids — is fixed at start-up. Which
key is which, and why, is declared once in :mod:`execd.config.keys`.
"""

from __future__ import annotations

from typing import Any

import msgspec

from execd.config import keys
from execd.config.schema import Config

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
    return {key: (["***", "***"] if keys.secret(key) else found[key])
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


def needs_restart(changed: list[str]) -> list[str]:
    """For each key a reload cannot apply: ``KEY: why`` (the reason its declaration gives)."""
    refused = []
    for key in changed:
        declared = keys.find(key)
        if declared is None:
            refused.append(f"{key}: fixed at start-up")
        elif declared.restart is not None:
            refused.append(f"{key}: {declared.restart}")
    return refused
