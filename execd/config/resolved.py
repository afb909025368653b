"""The config as execd resolved it: a plain mapping, every default filled, secrets masked.

``execd config show`` prints it, and the daemon's ``config`` control command answers it
(``execd config diff`` compares it with a file's); both are made here, from
:mod:`execd.config.keys`, so what is a table, what is a secret and what a reload applies
is decided in one place.

- Order: the tables and keys in the order keys.py declares them (its order is the
  schema's); venues and symbols by name.
- Secrets: a key whose declaration says it may hold one (:func:`execd.config.keys.secret`:
  ``ccxt.options``) shows ``"***"`` once it is set (unset stays unset: that it is unset
  tells nothing). Where a secret is kept (a key file's path, a systemd credential's
  name, an environment prefix: keys.py's ``reference``) is shown: the operator wrote it
  and needs to see it. Nothing is read beyond the config itself: a credential file is
  named, never opened. A venue's or symbol's name never decides what is masked.
- Decimals (limits, amounts) are strings, always: a TOML float would round
  ``0.1000000000000000055`` and drop a trailing zero, and the loader reads a string
  as the same Decimal it was, so the output loads back to an equal config.
- Unset keys (``None``) are ``null`` in JSON and left out of TOML, which has no null;
  the loader fills them back as unset.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import msgspec
import tomli_w
from msgspec import Struct

from execd.config import keys
from execd.config.schema import Config

MASK: Final = "***"
"""What a secret's value shows, in every format and over the control socket."""

# Each declared path's place, and every path that has keys below it (a table).
_ORDER: Final[dict[str, int]] = {}
for _index, _key in enumerate(keys.KEYS):
    _parts = _key.path.split(".")
    for _n in range(1, len(_parts) + 1):
        _ORDER.setdefault(".".join(_parts[:_n]), _index)
_TABLES: Final = frozenset(".".join(k.path.split(".")[:n]) for k in keys.KEYS
                           for n in range(1, k.path.count(".") + 1))


def _child(pattern: str, name: str) -> str:
    """The declared path of ``name`` below ``pattern``: itself, or ``*`` for a venue or symbol."""
    # Below a table of named tables every name is ``*``, even one spelled like a key.
    star = f"{pattern}.*" if pattern else "*"
    if star in _ORDER:
        return star
    return f"{pattern}.{name}" if pattern else name


def _is_table(pattern: str, value: Any) -> bool:
    return isinstance(value, dict) and (pattern == "" or pattern in _TABLES)


def resolved(config: Config) -> dict[str, Any]:
    """Every key of ``config`` with its default filled in, in keys.py's order, masked."""
    table = _walk(msgspec.to_builtins(config), (), "")
    assert isinstance(table, dict)
    return table


def _walk(value: Any, parts: keys.Parts, pattern: str) -> Any:
    # ``parts``: the key's path through the schema (names whole); ``pattern``: keys.py's.
    if not _is_table(pattern, value):
        if value is None or value == {} or not keys.secret(parts):
            # Plain JSON types all through: a tuple (crisis_regimes) is a list.
            return list(value) if isinstance(value, tuple) else value
        return MASK
    named = f"{pattern}.*" in _ORDER if pattern else False
    names = sorted(value) if named else sorted(
        value, key=lambda name: _ORDER.get(_child(pattern, name), len(_ORDER)))
    return {name: _walk(value[name], (*parts, name), _child(pattern, name)) for name in names}


def reply(file: str, config: Config) -> dict[str, Any]:
    """The daemon's answer to the ``config`` control command: never a secret."""
    return {"ok": True, "command": "config", "file": file, "config": resolved(config)}


def to_toml(table: Mapping[str, Any]) -> str:
    """``table`` (from :func:`resolved`) as TOML that tomllib reads back to it, less nulls."""
    return tomli_w.dumps(_without_nulls(table))


def to_json(table: Mapping[str, Any]) -> str:
    """``table`` (from :func:`resolved`) as indented JSON, nulls included."""
    return msgspec.json.format(msgspec.json.encode(table), indent=2).decode()


def _without_nulls(table: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _without_nulls(v) if isinstance(v, Mapping) else v
            for name, v in table.items() if v is not None}


# ------------------------------------------------------------------ differences


class Difference(Struct, frozen=True):
    """One key that differs between two resolved configs.

    ``old``/``new``: the values (``None``: unset); ``table``: the key is a whole table
    (a venue, a symbol, ``metrics``, a ccxt table) added or removed; ``restart``: why a
    reload cannot apply it (keys.py's reason), or None when a reload applies it.
    """

    key: str
    old: Any
    new: Any
    table: bool
    restart: str | None

    def line(self) -> str:
        """``daemon.poll_interval_ms: 100 -> 200 (needs a restart: ...)``."""
        if self.table:
            what = "added" if self.old is None else "removed"
        else:
            what = f"{_shown(self.old)} -> {_shown(self.new)}"
        how = ("reload applies it" if self.restart is None
               else f"needs a restart: {self.restart}")
        return f"{self.key}: {what} ({how})"


def _shown(value: Any) -> str:
    return "unset" if value is None else msgspec.json.encode(value).decode()


class Comparison(Struct, frozen=True):
    """What differs between two resolved configs, and the secrets that could not be compared.

    A secret set on both sides shows ``"***"`` on both: whether it changed cannot be
    known without its value, which never leaves the daemon, so such a key is listed in
    ``not_compared`` and the two configs are never called equal
    (:attr:`equal`; ``execd config diff`` exits 1).
    """

    differences: list[Difference]
    not_compared: list[str]

    @property
    def equal(self) -> bool:
        """Every key compared, and none differs."""
        return not self.differences and not self.not_compared


def compare(old: Mapping[str, Any], new: Mapping[str, Any]) -> Comparison:
    """Key by key, what changes from ``old`` (the running daemon's) to ``new`` (a file's)."""
    found: list[Difference] = []
    unknown: list[str] = []
    _compare(old, new, (), "", found, unknown)
    return Comparison(found, unknown)


def _restart(parts: keys.Parts) -> str | None:
    declared = keys.find(parts)
    # An undeclared key cannot be (test_keys fails first), but if one were, a reload
    # refuses it: app/reload.py's needs_restart says "fixed at start-up" too.
    return "fixed at start-up" if declared is None else declared.restart


def _compare(old: Any, new: Any, parts: keys.Parts, pattern: str,
             found: list[Difference], unknown: list[str]) -> None:
    key = keys.dotted(parts)
    if _is_table(pattern, old) and _is_table(pattern, new):
        names = list(old) + [name for name in new if name not in old]
        for name in names:
            below = (*parts, name)
            child = _child(pattern, name)
            if name not in old or name not in new:
                # A venue or a symbol: the whole table comes or goes.
                value = old[name] if name in old else new[name]
                found.append(Difference(keys.dotted(below), old.get(name), new.get(name),
                                        _is_table(child, value), _restart(below)))
            else:
                _compare(old[name], new[name], below, child, found, unknown)
    elif (old is None or new is None) and (_is_table(pattern, old) or _is_table(pattern, new)):
        # An optional table (metrics, a venue's ccxt) set on one side only.
        found.append(Difference(key, old, new, True, _restart(parts)))
    elif old == new == MASK:
        unknown.append(key)
    elif old != new:
        found.append(Difference(key, old, new, False, _restart(parts)))
