"""Which policy rule applies, with Hypothesis: the most specific matching rule wins, the
order of the rules does not matter, and a file with a tie is refused: for each pair
:func:`ties` names, an intent exists that both rules match at the top score."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from execd.policy.rules import FACTS, PATTERNED, Match, choose, matches, overlap, score, ties

VALUES = {"plane": ["paper", "live"], "venue": ["binance", "bybit", "okx"],
          "symbol": ["BTC/USDT", "BTC/EUR", "ETH/USDT"], "urgency": ["low", "critical"],
          "action": ["ADD", "EXIT"], "source_run": ["run-1", "run-12", "alpha"]}


@st.composite
def rule(draw: st.DrawFn) -> Match:
    fields = {}
    for fact in FACTS:
        options: list[str | None] = [None, *VALUES[fact]]
        if fact in PATTERNED:
            options += ["*", "B*", "BTC/*", "run-1*", "b*", "al*"]
        fields[fact] = draw(st.sampled_from(options))
    return Match(**fields)


@st.composite
def facts(draw: st.DrawFn) -> Match:
    return Match(**{fact: draw(st.sampled_from(VALUES[fact])) for fact in FACTS})


def _witness(a: Match, b: Match) -> Match:
    """An intent both match: per fact the longer of the two patterns, completed."""
    fields = {}
    for fact in FACTS:
        texts = [v for v in (getattr(a, fact), getattr(b, fact)) if v not in (None, "*")]
        exact = [v for v in texts if not v.endswith("*")]
        fields[fact] = exact[0] if exact else max((v[:-1] for v in texts), key=len,
                                                   default="") + "x"
    return Match(**fields)


@given(st.dictionaries(st.sampled_from("abcdefgh"), rule(), max_size=6),
       st.lists(facts(), min_size=1, max_size=10), st.randoms())
def test_the_most_specific_rule_wins_in_any_order_and_ties_are_refused(
        rules: dict[str, Match], intents: list[Match], rng: object) -> None:
    tied = ties(rules)
    for first, second in tied:
        a, b = rules[first], rules[second]
        assert score(a) == score(b) and overlap(a, b)
        both = _witness(a, b)
        assert matches(a, both) and matches(b, both)
    if tied:
        return
    shuffled = list(rules.items())
    rng.shuffle(shuffled)  # type: ignore[attr-defined]
    for intent in intents:
        got = choose(shuffled, intent)
        assert got == choose(sorted(rules.items()), intent)
        matching = [name for name, m in rules.items() if matches(m, intent)]
        if not matching:
            assert got is None
            continue
        top = max(score(rules[n]) for n in matching)
        assert [n for n in matching if score(rules[n]) == top] == [got]


def test_a_prefix_is_less_specific_than_the_exact_name_and_a_bare_star_is_nothing() -> None:
    exact, prefix, star = Match(symbol="BTC/USDT"), Match(symbol="BTC/*"), Match(symbol="*")
    assert score(exact) == 2 and score(prefix) == 1 and score(star) == score(Match()) == 0
    intent = Match("live", "binance", "BTC/USDT", "low", "ADD", "run-1")
    assert choose([("p", prefix), ("e", exact), ("s", star)], intent) == "e"
    assert choose([("p", prefix), ("s", star)], Match(symbol="ETH/USDT")) == "s"
    assert ties({"s": star, "none": Match()}) == [("none", "s")]
    assert ties({"a": Match(venue="binance"), "b": Match(symbol="BTC/USDT")}) == [("a", "b")]
    assert ties({"a": Match(venue="binance"), "b": Match(venue="okx")}) == []
