"""The outcome-settings digest: which settings decided the outcomes of a run.

The ``start`` record, and the ``config`` record of each reload, carry the SHA-256 of
the settings that decide outcomes, as :mod:`execd.config.keys` declares them (its
``digest``). Queue sizes, batch sizes, paths and logging are left out on purpose:
they must not change a single byte of the ledger, and a replay with other sizes
proves it (docs/ARCHITECTURE.md, "Determinism").

The bytes digested keep the first release's shape, so a config digests as it always
has: ``{"venues": ..., "clock": ..., "input": ..., "risk": ..., "governance": [...]}``,
each table its digested keys in schema order; a key added later with ``if_set`` is
left out while it holds its default. ``tests/unit/config/test_digest.py`` pins the
digests of the shipped configs.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

import msgspec
from msgspec import Struct

from execd.config.keys import BY_PATH
from execd.config.schema import Config, LoadedConfig
from execd.model.messages import encode

# The first release's order of the top-level tables; a table that later gets a
# digested key follows them, in schema order.
_FIRST: Final = ("venues", "clock", "input", "risk", "governance")
# The first release digested governance as the list of its values.
_AS_LIST: Final = frozenset({"governance"})
# Every path with a digested key at or below it.
_DIGESTED: Final = frozenset(
    key.path.rsplit(".", depth)[0]
    for key in BY_PATH.values() if key.digest != "out"
    for depth in range(key.path.count(".") + 1)
)

# Tables whose digested keys are all ``if_set`` (``routes``): left out while at their
# default, as such a key is.
_ONLY_IF_SET: Final = frozenset(
    table for table in _DIGESTED
    if all(key.digest in ("if_set", "out") for key in BY_PATH.values()
           if key.path.startswith(f"{table}.")))


def settings_sha256(loaded: LoadedConfig) -> str:
    """The outcome-settings digest of a loaded config, its policy file's included."""
    policy = loaded.policy
    return outcome_settings_sha256(loaded.config, None if policy is None else policy.sha256)


def outcome_settings_sha256(config: Config, policy_sha256: str | None = None) -> str:
    """Digest of the settings that decide outcomes (venues, limits, clock, input,
    governance) and, when there is one, of the policy file's rules (``policy``, last:
    their digest, :func:`execd.policy.file.canonical`): they decide outcomes as the
    limits do, whatever the file's path."""
    order = [*_FIRST, *(name for name in Config.__struct_fields__ if name not in _FIRST)]
    defaults = _defaults(Config)
    settings: dict[str, Any] = {}
    for name in order:
        value = getattr(config, name)
        if not _included(name, value, defaults[name]):
            continue
        picked = _pick(value, name)
        settings[name] = list(picked.values()) if name in _AS_LIST else picked
    if policy_sha256 is not None:
        settings["policy"] = policy_sha256
    return hashlib.sha256(encode(settings)).hexdigest()


def _pick(value: Any, path: str) -> Any:
    """``value`` with only what is digested at ``path`` and below."""
    if isinstance(value, Struct):
        defaults = _defaults(type(value))
        return {name: _pick(getattr(value, name), f"{path}.{name}")
                for name in value.__struct_fields__
                if _included(f"{path}.{name}", getattr(value, name), defaults[name])}
    entries = f"{path}.*"
    if isinstance(value, dict) and entries in BY_PATH:
        return {name: _pick(item, entries) for name, item in value.items()
                if _included(entries, item, msgspec.NODEFAULT)}
    return value


def _included(path: str, value: Any, default: Any) -> bool:
    key = BY_PATH.get(path)
    if key is None:         # a table that is always there: digested if anything in it is
        return path in _DIGESTED and (path not in _ONLY_IF_SET or bool(value != default))
    if key.digest == "if_set":
        return bool(value != default)
    return key.digest == "in"


def _defaults(cls: type[Struct]) -> dict[str, Any]:
    return {field.name: field.default_factory() if field.default_factory is not msgspec.NODEFAULT
            else field.default for field in msgspec.structs.fields(cls)}
