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
    """Every key whose value differs between ``old`` and ``new``, sorted, as
    :func:`execd.config.keys.dotted` writes it."""
    return sorted(changes(old, new))


def changes(old: Config, new: Config) -> dict[str, list[Any]]:
    """Every changed key (:func:`execd.config.keys.dotted`) with ``[old value, new value]``
    (None where unset).

    Secrets never appear, nor where they are kept: a key that could hold one, or that
    names a key file or credential, shows ``"***"`` for both values (keys.unrecorded).
    """
    found: dict[keys.Parts, list[Any]] = {}
    _diff(msgspec.to_builtins(old), msgspec.to_builtins(new), (), found)
    shown = {keys.dotted(parts): (["***", "***"] if keys.unrecorded(parts) else values)
             for parts, values in found.items()}
    return {key: shown[key] for key in sorted(shown)}


def _diff(old: Any, new: Any, parts: keys.Parts, found: dict[keys.Parts, list[Any]]) -> None:
    # A venue's or a symbol's name is one part, dots and all: its rules are its own.
    if isinstance(old, dict) and isinstance(new, dict):
        for key in old.keys() | new.keys():
            path = (*parts, str(key))
            if key not in old or key not in new:
                found[path] = [old.get(key, _MISSING), new.get(key, _MISSING)]
            else:
                _diff(old[key], new[key], path, found)
    elif old != new:
        found[parts] = [old, new]


def needs_restart(changed: list[str]) -> list[str]:
    """For each key a reload cannot apply: ``KEY: why`` (the reason its declaration gives).

    ``changed`` are keys as :func:`changes` writes them; each is read back into its parts
    (:func:`execd.config.keys.split`), so a venue named ``desk.symbols`` is a venue.
    """
    refused = []
    for key in changed:
        try:
            declared = keys.find(keys.split(key))
        except ValueError:      # not a key changes() wrote: refused, as unknown keys are
            declared = None
        if declared is None:
            refused.append(f"{key}: fixed at start-up")
        elif declared.restart is not None:
            refused.append(f"{key}: {declared.restart}")
    return refused
