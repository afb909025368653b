"""The lakehouse context the Risk Sentinel judges intents under.

Research and operators keep these files in the lakehouse, beside the inbox:

* ``audit/runs.jsonl`` — the audit registry of research runs, one JSON object a line
  with at least ``run_id``; an intent whose ``source_run`` is not there is refused;
* ``market/regime.json`` — ``{"regime": "CRISIS"}``: the current market regime;
* ``market/prices.json`` — ``{"BTC/USDT": "64200", ...}``: the latest price per symbol;
* ``market/volume_profile.json`` — volume profiles per symbol for VWAP schedules
  (:mod:`execd.reader.profiles`);
* ``market/volume.json`` — the market's volume per ended interval, for POV schedules
  (:mod:`execd.reader.volumes`);
* ``portfolio/allocations.json`` — ``{"book:B1": "10000", ...}``: allocations in the
  quote currency that intents may be sized from (README, "Sizing"), before the
  config's ``[allocations]``; an unreadable file gives none (an intent sized from one
  is refused, never sized from the config's instead);
* ``control/overrides.jsonl`` — manual overrides for regime parity, one
  ``{"intent_id": ..., "operator": ..., "reason": ...}`` a line;
* the plan ledger (``[governance] ledger_dir``), when governance is enforced.

The reader loads the context before each input file and, when it changed, records
it in the ledger (digests and counts) right before that file's first line, so every
decision is tied to the context it was made under and a replay sees the same one.
A file that is missing counts as empty (no runs, no regime, no prices); a file that
cannot be read or decoded is named in the record's ``problems`` and fails closed: an
unreadable regime counts as the first crisis regime, an unreadable registry registers
no run, unreadable prices or overrides give none. Only regular files of at most
``input.max_context_bytes`` are read (:mod:`execd.model.files`): a FIFO, a device or a huge
file is such a problem, never a hang. Loading never raises, and the same files always
give the same problem texts. JSONL files are split on ``\\n`` only: a bare CR is JSON
whitespace inside a line.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Annotated, TypeVar, cast

import msgspec
from msgspec import Meta, Struct

from execd.config.schema import InputConfig
from execd.model.errors import FileRefused
from execd.model.files import read_regular
from execd.model.messages import ContextRecord
from execd.reader import profiles as volume
from execd.reader import volumes as traded
from execd.reader.inbox import Lakehouse

Name = Annotated[str, Meta(min_length=1, max_length=256)]
T = TypeVar("T")
# A file's value, its digest (None when there is nothing to digest) and its problem.
Part = tuple[T, str | None, str | None]

# What a file that cannot be read or decoded at all counts as.
_TOO_DEEP = "JSON nested too deep to decode"


class RunEntry(Struct, frozen=True):
    """One research run in the audit registry (other fields are the registry's own)."""

    run_id: Name


class RegimeFile(Struct, frozen=True):
    """The regime file."""

    regime: Name


class Override(Struct, frozen=True, forbid_unknown_fields=True):
    """A manual override: this intent may pass regime parity, on this operator's word."""

    intent_id: uuid.UUID
    operator: Name
    reason: Name


_run = msgspec.json.Decoder(RunEntry).decode
_regime = msgspec.json.Decoder(RegimeFile).decode
_prices = msgspec.json.Decoder(dict[Name, Decimal]).decode
_override = msgspec.json.Decoder(Override).decode


class LakehouseContext:
    """What the sentinel needs from the lakehouse, as of one moment. Never mutated."""

    def __init__(self, runs: frozenset[str], regime: str | None, prices: dict[str, Decimal],
                 overrides: dict[uuid.UUID, Override], plans: dict[str, str],
                 record: ContextRecord, profiles: volume.Profiles = volume.NONE,
                 volumes: traded.Volumes = traded.NONE,
                 allocations: dict[str, Decimal] | None = None, unreadable: bool = False
                 ) -> None:
        self.runs = runs
        self.regime = regime
        self.prices = prices
        self.overrides = overrides
        self.plans = plans
        self.record = record
        self.profiles = profiles
        self.volumes = volumes
        self.allocations = allocations or {}
        # The allocations file could not be read: it hides the config's, fail closed.
        self.allocations_unreadable = unreadable


EMPTY = LakehouseContext(frozenset(), None, {}, {}, {},
                         ContextRecord(0, None, None, 0, None, 0, None, 0, None))


def _stat_key(path: Path) -> object:
    """What, when it changes, means the file must be read again."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        # Cached as a failure; a fixed permission or path changes the key.
        return ("error", exc.errno)
    # ctime too: a chmod that makes an unreadable file readable changes only that.
    return (st.st_dev, st.st_ino, st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class ContextLoader:
    """Loads the context, re-reading only files whose stat (inode, size, times) changed."""

    def __init__(self, lakehouse: Lakehouse, plans_dir: Path | None,
                 crisis_regimes: tuple[str, ...],
                 max_bytes: int = InputConfig().max_context_bytes) -> None:
        self.lakehouse = lakehouse
        self.plans_dir = plans_dir
        self.crisis = crisis_regimes[0] if crisis_regimes else "CRISIS"
        self.max_bytes = max_bytes
        self._cache: dict[str, tuple[object, object]] = {}
        self.current = EMPTY

    def _cached(self, name: str, key: Callable[[], object], load: Callable[[], Part[T]],
                closed: T) -> Part[T]:
        """``load()``, unless the file's key is unchanged; ``closed`` (the fail-closed
        value) with a problem when anything at all goes wrong."""
        try:
            current = key()
            hit = self._cache.get(name)
            if hit is not None and hit[0] == current:
                return cast(Part[T], hit[1])
            part = load()
        except Exception as exc:  # noqa: BLE001 - never out of load(): fail closed
            return closed, None, f"{name}: cannot be loaded ({type(exc).__name__})"
        self._cache[name] = (current, part)
        return part

    def load(self) -> LakehouseContext:
        """The context now (blocking file I/O: call it from a worker thread). Never raises."""
        lh = self.lakehouse
        limit = self.max_bytes
        problems: list[str] = []
        runs, runs_sha, bad = self._cached(
            "runs.jsonl", lambda: _stat_key(lh.runs), lambda: _read_runs(lh.runs, limit),
            frozenset[str]())
        if bad:
            problems.append(bad)
        regime, _, regime_problem = self._cached(
            "regime.json", lambda: _stat_key(lh.regime),
            lambda: _read_regime(lh.regime, limit), None)
        if regime_problem:
            problems.append(regime_problem)
            regime = self.crisis
        prices, prices_sha, bad = self._cached(
            "prices.json", lambda: _stat_key(lh.prices),
            lambda: _read_prices(lh.prices, limit), dict[str, Decimal]())
        if bad:
            problems.append(bad)
        overrides, overrides_sha, bad = self._cached(
            "overrides.jsonl", lambda: _stat_key(lh.overrides),
            lambda: _read_overrides(lh.overrides, limit), dict[uuid.UUID, Override]())
        if bad:
            problems.append(bad)
        profiles, profiles_sha, bad = self._cached(
            "volume_profile.json", lambda: _stat_key(lh.volume_profiles),
            lambda: _read_profiles(lh.volume_profiles, limit), volume.Profiles({}, every=True))
        if bad:
            problems.append(bad)
        volumes, volumes_sha, bad = self._cached(
            "volume.json", lambda: _stat_key(lh.volumes),
            lambda: _read_volumes(lh.volumes, limit), traded.Volumes({}, every=True))
        if bad:
            problems.append(bad)
        allocations, allocations_sha, bad = self._cached(
            "allocations.json", lambda: _stat_key(lh.allocations),
            lambda: _read_amounts(lh.allocations, limit), None)
        if bad:
            problems.append(bad)
        plans: dict[str, str] = {}
        plans_sha: str | None = None
        plans_dir = self.plans_dir
        if plans_dir is not None:
            plans, plans_sha, bad = self._cached(
                f"plan ledger {plans_dir}", lambda: _plans_key(plans_dir),
                lambda: _read_plans(plans_dir), dict[str, str]())
            if bad:
                problems.append(bad)
        record = ContextRecord(len(runs), runs_sha, regime, len(prices), prices_sha,
                               len(overrides), overrides_sha, len(plans), plans_sha,
                               tuple(problems), len(profiles.profiles), profiles_sha,
                               len(volumes.bars), volumes_sha, len(allocations or ()),
                               allocations_sha)
        if record == self.current.record:
            return self.current
        self.current = LakehouseContext(runs, regime, prices, overrides, plans, record,
                                        profiles, volumes, allocations,
                                        unreadable=allocations is None and bad is not None)
        return self.current


def _read(path: Path, max_bytes: int) -> tuple[bytes | None, str | None]:
    """The file's bytes (None when missing or refused) and the problem, if any."""
    try:
        return read_regular(path, max_bytes), None
    except FileRefused as exc:
        if exc.missing:
            return None, None
        return None, f"{path.name}: expected {exc.expected}, found {exc.found}"


def _lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(line number, line) of a JSONL file's non-blank lines, split on LF alone."""
    for number, line in enumerate(data.split(b"\n"), 1):
        if line.strip():
            yield number, line


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_runs(path: Path, max_bytes: int) -> Part[frozenset[str]]:
    data, problem = _read(path, max_bytes)
    if data is None:
        return frozenset(), None, problem
    runs: set[str] = set()
    bad: list[int] = []
    for number, line in _lines(data):
        try:
            runs.add(_run(line).run_id)
        except (msgspec.DecodeError, RecursionError):
            bad.append(number)
    problem = None
    if bad:
        problem = f"{path.name}: {len(bad)} unreadable line(s), first at line {bad[0]}"
    return frozenset(runs), _sha(data), problem


def _read_regime(path: Path, max_bytes: int) -> Part[str | None]:
    data, problem = _read(path, max_bytes)
    if data is None:
        return None, None, problem
    try:
        return _regime(data).regime, None, None
    except msgspec.DecodeError as exc:
        return None, None, f"{path.name}: {exc}"
    except RecursionError:
        return None, None, f"{path.name}: {_TOO_DEEP}"


def _read_prices(path: Path, max_bytes: int) -> Part[dict[str, Decimal]]:
    data, problem = _read(path, max_bytes)
    if data is None:
        return {}, None, problem
    try:
        prices = _prices(data)
    except msgspec.DecodeError as exc:
        return {}, _sha(data), f"{path.name}: {exc}"
    except RecursionError:
        return {}, _sha(data), f"{path.name}: {_TOO_DEEP}"
    # The same range as intent prices: anything else could overflow the exposure sums.
    good = {s: p for s, p in prices.items()
            if p.is_finite() and p > 0 and -18 <= p.adjusted() <= 15}
    if len(good) != len(prices):
        bad = sorted(set(prices) - set(good))
        problem = f"{path.name}: no usable price for {', '.join(bad[:5])}"
    return good, _sha(data), problem


def _read_amounts(path: Path, max_bytes: int) -> Part[dict[str, Decimal] | None]:
    """Allocations: positive decimals by name. None (with the problem) when the file
    cannot be read or holds one that is not: sizing from it is refused until it is fixed."""
    data, problem = _read(path, max_bytes)
    if data is None:
        return ({} if problem is None else None), None, problem
    try:
        amounts = _prices(data)
    except msgspec.DecodeError as exc:
        return None, _sha(data), f"{path.name}: {exc}"
    except RecursionError:
        return None, _sha(data), f"{path.name}: {_TOO_DEEP}"
    bad = sorted(name for name, amount in amounts.items()
                 if not (amount.is_finite() and amount > 0 and amount.adjusted() <= 15))
    if bad:
        return None, _sha(data), (f"{path.name}: not a positive decimal of at most 1e15: "
                                  f"{', '.join(bad[:5])}")
    return amounts, _sha(data), None


def _read_profiles(path: Path, max_bytes: int) -> Part[volume.Profiles]:
    data, problem = _read(path, max_bytes)
    if data is None:
        # Missing: every symbol plans flat. Refused (not a regular file, too big): none.
        return volume.Profiles({}, every=problem is not None), None, problem
    parsed, problem = volume.parse(data, path.name)
    return parsed, _sha(data), problem


def _read_volumes(path: Path, max_bytes: int) -> Part[traded.Volumes]:
    data, problem = _read(path, max_bytes)
    if data is None:
        # Missing: no symbol is listed. Refused (not a regular file, too big): unusable.
        return traded.Volumes({}, every=problem is not None), None, problem
    parsed, problem = traded.parse(data, path.name)
    return parsed, _sha(data), problem


def _read_overrides(path: Path, max_bytes: int) -> Part[dict[uuid.UUID, Override]]:
    data, problem = _read(path, max_bytes)
    if data is None:
        return {}, None, problem
    overrides: dict[uuid.UUID, Override] = {}
    bad: list[int] = []
    for number, line in _lines(data):
        try:
            override = _override(line)
        except (msgspec.DecodeError, RecursionError):
            bad.append(number)
            continue
        overrides.setdefault(override.intent_id, override)
    problem = None
    if bad:
        problem = f"{path.name}: {len(bad)} unreadable line(s), first at line {bad[0]}"
    return overrides, _sha(data), problem


def _plans_key(directory: Path) -> tuple[tuple[str, int, int], ...]:
    try:
        names = sorted(p for p in os.listdir(directory) if p.startswith("segment-"))
    except FileNotFoundError:
        return ()
    keys = []
    for name in names:
        try:
            st = os.stat(directory / name)
        except FileNotFoundError:  # gone since the listing: the next key will say so
            continue
        keys.append((name, st.st_size, st.st_mtime_ns))
    return tuple(keys)


def _read_plans(directory: Path) -> Part[dict[str, str]]:
    # Imported here: the plan ledger is only read when governance is enforced.
    from execd.governance.plan_ledger import PlanLedger

    if not directory.exists():
        return {}, None, None
    try:
        governance = PlanLedger(directory).load()
    except Exception as exc:  # noqa: BLE001 - a broken plan ledger fails closed
        # No plans then: every intent that names one is refused until it is repaired.
        return {}, None, f"plan ledger {directory}: {exc}"
    plans: dict[str, str] = {
        plan_id: plan.state for plan_id, plan in sorted(governance.plans.items())}
    return plans, _sha(msgspec.json.encode(plans)), None
