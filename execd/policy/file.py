"""An execution policy file: its rules as TOML, checked whole (README, "Execution policies").

Every problem is a line ``FILE: KEY: expected WHAT, found WHAT``, as the config's are
(:mod:`execd.config.load`, whose table checker reads this file too), and all of them
are reported at once. Beyond the types: a pattern has at most one ``*``, at its end, and
only on venue, symbol and source_run; a default algorithm takes only its own
parameters; a minimum duration is not above the maximum; and no two rules tie
(:func:`execd.policy.rules.ties`).
"""

from __future__ import annotations

import hashlib
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import Meta, Struct

from execd.config.load import check_table, read_toml
from execd.model.errors import ConfigError, ConfigProblem
from execd.model.messages import Name, OrderType, Slippage, Urgency
from execd.policy import rules
from execd.policy.rules import Match
from execd.schedule.intake import ALGORITHMS, MAX_DIGITS, MAX_SLICES, TIMES_IN_FORCE, parameters_of

MAX_POLICY_BYTES = 1 << 20
# Rules in name order, keys sorted, decimals as written: the digest's bytes.
_CANONICAL: Final = msgspec.json.Encoder(decimal_format="string", order="sorted")
_LEAST, _BEYOND = Decimal(1).scaleb(-18), Decimal(1).scaleb(16)
Positive = Annotated[int, Meta(gt=0, le=2**63 - 1)]
Span = Annotated[int, Meta(gt=0, le=2**62)]
#: The most rules a file may have: choosing one and finding ties look at them all.
MAX_RULES: Final = 256
#: Ties named one line each, up to this many; then one line says how many more.
MAX_TIE_LINES: Final = 10
Algorithm = Literal["immediate", "twap", "vwap", "iceberg", "pov"]
TimeInForce = Literal["GTC", "IOC", "FOK", "GTD", "PO"]
assert set(ALGORITHMS) == set(Algorithm.__args__)  # type: ignore[attr-defined]
assert set(TIMES_IN_FORCE) == set(TimeInForce.__args__)  # type: ignore[attr-defined]


class Default(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """The execution an intent of one urgency gets when it names none: bounded as the
    schedule's intake bounds an intent's, so no default is one every intent is refused
    for (a window of at most 2**62 clock units starts at any time a ledger holds)."""

    algorithm: Algorithm
    # Decimals as strings ("0.1"): a TOML float would round.
    duration: Span | None = None
    slices: Annotated[int, Meta(gt=0, le=MAX_SLICES)] | None = None
    interval: Span | None = None
    visible: Decimal | None = None
    participation: Decimal | None = None
    # GTD is not a default: its expire_at is a time, which only an intent can name.
    time_in_force: Literal["GTC", "IOC", "FOK", "PO"] | None = None


class Pacing(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """How fast a schedule may trade: its share of volume, its length, a child's size."""

    max_participation: Decimal | None = None
    min_duration: Annotated[int, Meta(ge=0, le=2**63 - 1)] | None = None
    max_duration: Positive | None = None
    max_child_notional: Decimal | None = None


class Rule(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """One rule: what it matches, and how what it matches may execute."""

    match: Match = Match()
    order_types: list[OrderType] | None = None
    times_in_force: list[TimeInForce] | None = None
    algorithms: dict[Urgency, Default] = {}
    pacing: Pacing | None = None
    slippage: Slippage | None = None
    # The lowest leverage cap its intents are checked under (the Risk Sentinel's
    # account leverage, gross over equity): an intent's own max_leverage, if lower, stays.
    max_leverage: Decimal | None = None


class PolicyFile(Struct, frozen=True, forbid_unknown_fields=True):
    """A whole policy file."""

    rules: dict[Name, Rule]


class Policy(Struct, frozen=True):
    """A checked policy file: its path, its rules and their SHA-256 (of the rules as
    canonical JSON, so that a comment or a reordering changes nothing)."""

    path: str
    file: PolicyFile
    sha256: str
    # Facts -> the rule chosen: intents share few, and choosing looks at every rule.
    chosen: dict[tuple[str | None, ...], str | None] = msgspec.field(default_factory=dict)

    def applies(self, facts: Match) -> str | None:
        """The name of the rule that applies to an intent of ``facts``, or None."""
        key = tuple(getattr(facts, fact) for fact in rules.FACTS)
        chosen = self.chosen
        if key in chosen:
            return chosen[key]
        if len(chosen) >= _CHOSEN:
            chosen.clear()  # bounded: a pure function's memo, so forgetting changes nothing
        name = chosen[key] = rules.choose(
            ((n, r.match) for n, r in self.file.rules.items()), facts)
        return name


_CHOSEN: Final = 1 << 16


def load(path: str | Path) -> Policy:
    """Read and check ``path``; ConfigError listing every problem. Blocking."""
    name = str(path)
    _, data = read_toml(path, MAX_POLICY_BYTES)
    problems: list[ConfigProblem] = []
    check_table(PolicyFile, data, "", name, problems, "logical", ())
    if not problems:
        file = msgspec.convert(data, PolicyFile)
        _check_meaning(file, name, problems)
    if problems:
        raise ConfigError(problems)
    # The rules' digest, not the bytes': comments, layout and key order change nothing,
    # as "1s" and 1000 are one config (README, "Configuration").
    return Policy(name, file, hashlib.sha256(_CANONICAL.encode(canonical(file))).hexdigest())


def canonical(file: PolicyFile) -> dict[str, Any]:
    """The rules as what they mean, for the digest: what a rule leaves out and what it
    says the same way are one (a bare ``"*"`` and no fact; an empty pacing and none; an
    immediate default with no time in force, which changes nothing, and no default);
    lists are sets; decimals are normalized ("0.10" is "0.1")."""
    out: dict[str, Any] = {}
    for rule_name, rule in file.rules.items():
        match = {f: v for f in rules.FACTS if (v := getattr(rule.match, f)) not in (None, "*")}
        body: dict[str, Any] = {"match": match}
        for key in ("order_types", "times_in_force"):
            listed = getattr(rule, key)
            if listed is not None:
                body[key] = sorted(set(listed))
        algorithms = {u: _normal(msgspec.to_builtins(d)) for u, d in rule.algorithms.items()
                      if d.algorithm != "immediate" or d.time_in_force is not None}
        if algorithms:
            body["algorithms"] = algorithms
        pacing = _normal(msgspec.to_builtins(rule.pacing)) if rule.pacing is not None else {}
        if pacing:
            body["pacing"] = pacing
        if rule.max_leverage is not None:
            body["max_leverage"] = _exact(rule.max_leverage)
        if rule.slippage is not None:
            body["slippage"] = {"stretch": 2, **msgspec.to_builtins(rule.slippage)} if (
                rule.slippage.response == "slow") else msgspec.to_builtins(rule.slippage)
        out[rule_name] = body
    return out


def _normal(table: dict[str, Any]) -> dict[str, Any]:
    """``table`` with its decimals (strings of digits) normalized."""
    return {k: (_exact(Decimal(v)) if isinstance(v, str) and k in _DECIMALS else v)
            for k, v in table.items()}


def _exact(value: Decimal) -> str:
    """``value`` without trailing zeros, and never rounded ("2.0" is "2"; a 40-digit cap
    is not)."""
    return str(value.normalize(_WHOLE))


_WHOLE: Final = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)


_DECIMALS: Final = frozenset(("visible", "participation", "max_participation",
                              "max_child_notional"))


# What each algorithm's default must name to be planned: an intent of its urgency that
# names no execution would otherwise be refused for the policy's mistake.
_NEEDS: Final = {"twap": "duration and one of slices, interval",
                 "vwap": "duration and one of slices, interval",
                 "pov": "duration and participation", "iceberg": "visible"}


def _missing(default: Default, given: set[str]) -> str | None:
    """What ``default`` lacks to be planned (its needs), or None."""
    algorithm = default.algorithm
    if algorithm in ("twap", "vwap"):
        complete = "duration" in given and len(given & {"slices", "interval"}) == 1
    elif algorithm == "pov":
        complete = {"duration", "participation"} <= given
    elif algorithm == "iceberg":
        complete = "visible" in given
    else:
        return None
    return None if complete else _NEEDS[algorithm]


def _check_meaning(file: PolicyFile, name: str, problems: list[ConfigProblem]) -> None:
    if not file.rules:
        problems.append(ConfigProblem(name, "rules", "at least one rule", "none"))
    if len(file.rules) > MAX_RULES:
        problems.append(ConfigProblem(name, "rules", f"at most {MAX_RULES} rules",
                                      str(len(file.rules))))
        return
    for rule_name, rule in sorted(file.rules.items()):
        where = f"rules.{rule_name}"
        for fact in rules.FACTS:
            value = getattr(rule.match, fact)
            if not isinstance(value, str) or "*" not in value:
                continue
            why = (rules.pattern_problem(value) if fact in rules.PATTERNED
                   else f"one {fact} exactly (no pattern)")
            if why is not None:
                problems.append(ConfigProblem(name, f"{where}.match.{fact}", why, repr(value)))
        for urgency, default in sorted(rule.algorithms.items()):
            given = {f for f in Default.__struct_fields__
                     if f not in ("algorithm", "time_in_force")
                     and getattr(default, f) is not None}
            extra = sorted(given - parameters_of(default.algorithm))
            if extra:
                problems.append(ConfigProblem(
                    name, f"{where}.algorithms.{urgency}",
                    f"only parameters of {default.algorithm}", ", ".join(extra)))
            missing = _missing(default, given)
            if missing is not None:
                problems.append(ConfigProblem(
                    name, f"{where}.algorithms.{urgency}",
                    f"{missing} (a default has no start or end of its own)",
                    ", ".join(sorted(given)) or "none"))
        pacing = rule.pacing
        shares = [(f"algorithms.{u}.participation", d.participation)
                  for u, d in sorted(rule.algorithms.items())]
        if pacing is not None:
            shares.append(("pacing.max_participation", pacing.max_participation))
        for key, share in shares:
            if share is not None and not (share.is_finite() and _LEAST <= share <= 1
                                          and len(share.as_tuple().digits) <= MAX_DIGITS):
                problems.append(ConfigProblem(
                    name, f"{where}.{key}",
                    f"a decimal within 1e-18 .. 1, of at most {MAX_DIGITS} digits", str(share)))
        positives = [(f"algorithms.{u}.visible", d.visible)
                     for u, d in sorted(rule.algorithms.items())]
        if pacing is not None:
            positives.append(("pacing.max_child_notional", pacing.max_child_notional))
        positives.append(("max_leverage", rule.max_leverage))
        for key, value in positives:
            if value is not None and not (value.is_finite() and _LEAST <= value < _BEYOND):
                problems.append(ConfigProblem(name, f"{where}.{key}",
                                              "a decimal within 1e-18 .. 1e15", str(value)))
        if (pacing is not None and pacing.min_duration is not None
                and pacing.max_duration is not None and pacing.min_duration > pacing.max_duration):
            problems.append(ConfigProblem(
                name, f"{where}.pacing.min_duration",
                f"at most pacing.max_duration ({pacing.max_duration})", str(pacing.min_duration)))
        _check_slippage(rule.slippage, name, where, problems)
    tied = rules.ties({n: r.match for n, r in file.rules.items()})
    if len(tied) > MAX_TIE_LINES:
        problems.append(ConfigProblem(name, "rules", "no ties",
                                      f"{len(tied)} ties, the first {MAX_TIE_LINES} below"))
    for first, second in tied[:MAX_TIE_LINES]:
        problems.append(ConfigProblem(
            name, f"rules.{second}.match",
            f"a rule more or less specific than rules.{first} (both score "
            f"{rules.score(file.rules[first].match)} and can match the same intent)", "a tie"))


def _check_slippage(slipped: Slippage | None, name: str, where: str,
                    problems: list[ConfigProblem]) -> None:
    """A tolerance names at least one maximum; ``stretch`` is ``slow``'s alone."""
    if slipped is not None:
        if slipped.max_order_bps is None and slipped.max_parent_bps is None:
            problems.append(ConfigProblem(
                name, f"{where}.slippage", "max_order_bps or max_parent_bps (or both)",
                "neither"))
        if slipped.stretch is not None and slipped.response != "slow":
            problems.append(ConfigProblem(
                name, f"{where}.slippage.stretch", "stretch only with response = \"slow\"",
                f"response = {slipped.response!r}"))
