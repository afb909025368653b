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
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Final, Literal

import msgspec
from msgspec import Meta, Struct

from execd.config.load import check_table, read_toml
from execd.model.errors import ConfigError, ConfigProblem
from execd.model.messages import Name, OrderType, Urgency
from execd.policy import rules
from execd.policy.rules import Match
from execd.schedule.intake import ALGORITHMS, TIMES_IN_FORCE, parameters_of

MAX_POLICY_BYTES = 1 << 20
# Rules in name order, keys sorted, decimals as written: the digest's bytes.
_CANONICAL: Final = msgspec.json.Encoder(decimal_format="string", order="sorted")
_BEYOND = Decimal(1).scaleb(16)
Positive = Annotated[int, Meta(gt=0, le=2**63 - 1)]
Algorithm = Literal["immediate", "twap", "vwap", "iceberg", "pov"]
TimeInForce = Literal["GTC", "IOC", "FOK", "GTD", "PO"]
assert set(ALGORITHMS) == set(Algorithm.__args__)  # type: ignore[attr-defined]
assert set(TIMES_IN_FORCE) == set(TimeInForce.__args__)  # type: ignore[attr-defined]


class Default(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """The execution an intent of one urgency gets when it names none."""

    algorithm: Algorithm
    # Decimals as strings ("0.1"): a TOML float would round.
    duration: Positive | None = None
    slices: Positive | None = None
    interval: Positive | None = None
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


class PolicyFile(Struct, frozen=True, forbid_unknown_fields=True):
    """A whole policy file."""

    rules: dict[Name, Rule]


class Policy(Struct, frozen=True):
    """A checked policy file: its path, its rules and their SHA-256 (of the rules as
    canonical JSON, so that a comment or a reordering changes nothing)."""

    path: str
    file: PolicyFile
    sha256: str

    def applies(self, facts: Match) -> str | None:
        """The name of the rule that applies to an intent of ``facts``, or None."""
        return rules.choose(((n, r.match) for n, r in self.file.rules.items()), facts)


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
    return Policy(name, file, hashlib.sha256(_CANONICAL.encode(file)).hexdigest())


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
            if share is not None and not (share.is_finite() and 0 < share <= 1):
                problems.append(ConfigProblem(name, f"{where}.{key}",
                                              "a decimal above 0, at most 1", str(share)))
        positives = [(f"algorithms.{u}.visible", d.visible)
                     for u, d in sorted(rule.algorithms.items())]
        if pacing is not None:
            positives.append(("pacing.max_child_notional", pacing.max_child_notional))
        for key, value in positives:
            if value is not None and not (value.is_finite() and 0 < value < _BEYOND):
                problems.append(ConfigProblem(name, f"{where}.{key}",
                                              "a decimal within 1e-18 .. 1e15", str(value)))
        if (pacing is not None and pacing.min_duration is not None
                and pacing.max_duration is not None and pacing.min_duration > pacing.max_duration):
            problems.append(ConfigProblem(
                name, f"{where}.pacing.min_duration",
                f"at most pacing.max_duration ({pacing.max_duration})", str(pacing.min_duration)))
    for first, second in rules.ties({n: r.match for n, r in file.rules.items()}):
        problems.append(ConfigProblem(
            name, f"rules.{second}.match",
            f"a rule more or less specific than rules.{first} (both score "
            f"{rules.score(file.rules[first].match)} and can match the same intent)", "a tie"))
