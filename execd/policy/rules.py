"""An execution policy's rules, and which one applies to an intent. Pure.

A policy file names its rules (``[rules.NAME]``); each matches intents on up to six
facts (plane, venue, symbol, urgency, action, source run) and says how they may
execute. The rule that applies is the most specific one that matches: each fact a
rule names scores 2 when exact, 1 when a prefix pattern (``"BTC/*"``, ``"run-2026-*"``:
one ``*``, at the end; a bare ``"*"`` is the same as naming nothing and scores 0).
Two rules of the same score that some intent could match both are a *tie*, which
makes the file unusable (:func:`ties`): so at most one rule ever applies at the top
score, and the order of the rules in the file never matters.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from msgspec import Struct

from execd.model.messages import Action, Name, Plane, Urgency

#: The facts a rule may match on, in the order problem lines and ``explain`` name them.
FACTS: Final = ("plane", "venue", "symbol", "urgency", "action", "source_run")
#: The facts that take prefix patterns; the others are names from a fixed set.
PATTERNED: Final = frozenset(("venue", "symbol", "source_run"))


class Match(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """What a rule matches: every fact it names (None: any value). An intent's own
    facts are one too, each named exactly."""

    plane: Plane | None = None
    venue: Name | None = None
    symbol: Name | None = None
    urgency: Urgency | None = None
    action: Action | None = None
    source_run: Name | None = None


def _pattern(value: str | None) -> tuple[str, bool] | None:
    """(text, is_prefix) of a named fact, or None when it matches anything."""
    if value is None or value == "*":
        return None
    if value.endswith("*"):
        return value[:-1], True
    return value, False


def pattern_problem(value: str) -> str | None:
    """Why ``value`` is no pattern (one ``*``, only at the end), or None."""
    if "*" in value[:-1]:
        return "an exact name, or a prefix ending in one * (\"BTC/*\")"
    return None


def score(match: Match) -> int:
    """How specific ``match`` is: 2 a named exact fact, 1 a prefix pattern."""
    total = 0
    for fact in FACTS:
        named = _pattern(getattr(match, fact))
        if named is not None:
            total += 1 if named[1] else 2
    return total


def _fits(pattern: tuple[str, bool] | None, value: str | None) -> bool:
    if pattern is None:
        return True
    if value is None:
        return False
    text, prefix = pattern
    return value.startswith(text) if prefix else value == text


def matches(match: Match, facts: Match) -> bool:
    """Whether an intent of ``facts`` (every fact named, exactly) is matched."""
    return all(_fits(_pattern(getattr(match, fact)), getattr(facts, fact)) for fact in FACTS)


def _meet(a: tuple[str, bool] | None, b: tuple[str, bool] | None) -> bool:
    """Whether some value fits both patterns."""
    if a is None or b is None:
        return True
    (ta, pa), (tb, pb) = a, b
    if pa and pb:
        return ta.startswith(tb) or tb.startswith(ta)
    if pa:
        return tb.startswith(ta)
    if pb:
        return ta.startswith(tb)
    return ta == tb


def overlap(a: Match, b: Match) -> bool:
    """Whether some intent is matched by both ``a`` and ``b``."""
    return all(_meet(_pattern(getattr(a, f)), _pattern(getattr(b, f))) for f in FACTS)


def ties(rules: dict[str, Match]) -> list[tuple[str, str]]:
    """Every pair of rules (names in order) of the same score that can match one intent."""
    named = sorted(rules.items())
    found = []
    for i, (first, a) in enumerate(named):
        for second, b in named[i + 1:]:
            if score(a) == score(b) and overlap(a, b):
                found.append((first, second))
    return found


def choose(rules: Iterable[tuple[str, Match]], facts: Match) -> str | None:
    """The name of the rule that applies to an intent of ``facts``: the most specific
    that matches (None: none does). With no ties (:func:`ties`), it is the only one."""
    best: tuple[int, str] | None = None
    for name, match in rules:
        if matches(match, facts):
            found = (score(match), name)
            # The name breaks a tie only in a file :func:`ties` refused.
            if best is None or found[0] > best[0] or (found[0] == best[0] and name < best[1]):
                best = found
    return None if best is None else best[1]
