"""Policy files: the shipped example checks, and each kind of mistake is its one clear
line (file, key, expected, found) with exit status 2; explain names the rule that
applies and the execution and plan an intent gets."""

from __future__ import annotations

from pathlib import Path

import pytest

from execd.cli.main import main
from execd.policy import file as policy_file
from execd.policy.rules import Match

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = ROOT / "config" / "policies.toml"


def test_the_shipped_policy_checks_and_its_rules_apply_by_specificity(
        capsys: pytest.CaptureFixture[str]) -> None:
    policy = policy_file.load(SHIPPED)
    assert sorted(policy.file.rules) == ["default", "live-btc", "paper"]
    assert policy.applies(Match("paper", "binance", "BTC/USDT", "medium", None, "r")) == "paper"
    assert policy.applies(Match("live", "binance", "BTC/USDT", "low", None, "r")) == "live-btc"
    assert policy.applies(Match("live", "binance", "ETH/USDT", "low", None, "r")) == "default"
    assert main(["policy", "check", str(SHIPPED)]) == 0
    assert f"3 rule(s) (default, live-btc, paper); sha256 {policy.sha256}" in (
        capsys.readouterr().out)


MISTAKES = {
    "[rules.a]\nmatch = { venue = \"bin*ance\" }\n":
        "rules.a.match.venue: expected an exact name, or a prefix ending in one *",
    "[rules.a]\nmatch = { urgency = \"hi*\" }\n":
        "rules.a.match.urgency: expected one of 'low', 'medium', 'high', 'critical' or nothing",
    "[rules.a]\nmatch = { plane = \"paper\" }\n[rules.b]\nmatch = { venue = \"x\" }\n":
        "rules.b.match: expected a rule more or less specific than rules.a (both score 2",
    "[rules.a]\nsurprise = 1\n": "rules.a.surprise: expected one of match, order_types",
    "[rules.a]\norder_types = [\"stop\"]\n":
        "rules.a.order_types: expected an array of one of 'market', 'limit'",
    "[rules.a.algorithms.low]\nalgorithm = \"twap\"\nduration = 9\nslices = 3\n"
    "visible = \"1\"\n":
        "rules.a.algorithms.low: expected only parameters of twap, found visible",
    "[rules.a.algorithms.low]\nalgorithm = \"pov\"\nduration = 9\nparticipation = \"1.5\"\n":
        "rules.a.algorithms.low.participation: expected a decimal within 1e-18 .. 1, of at "
        "most 24 digits, found 1.5",
    "[rules.a.algorithms.low]\nalgorithm = \"iceberg\"\nvisible = \"1E-30\"\n":
        "rules.a.algorithms.low.visible: expected a decimal within 1e-18 .. 1e15, found 1E-30",
    "[rules.a.algorithms.low]\nalgorithm = \"twap\"\nduration = 9\nslices = 20000\n":
        "rules.a.algorithms.low.slices: expected",
    "[rules.a.algorithms.low]\nalgorithm = \"twap\"\nduration = 9223372036854775807\n"
    "slices = 2\n": "rules.a.algorithms.low.duration: expected",
    "[rules.a.algorithms.urgent]\nalgorithm = \"twap\"\n":
        "rules.a.algorithms.urgent: expected one of 'low', 'medium', 'high', 'critical'",
    "[rules.a.pacing]\nmin_duration = 10\nmax_duration = 5\n":
        "rules.a.pacing.min_duration: expected at most pacing.max_duration (5), found 10",
    "[rules.a.pacing]\nmax_child_notional = \"-1\"\n":
        "rules.a.pacing.max_child_notional: expected a decimal within 1e-18 .. 1e15",
    "[rules.a.algorithms.low]\nalgorithm = \"twap\"\ntime_in_force = \"GTD\"\n":
        "rules.a.algorithms.low.time_in_force: expected one of 'GTC', 'IOC', 'FOK', 'PO'",
    "[rules.a.algorithms.low]\nalgorithm = \"twap\"\nduration = 9\n":
        "rules.a.algorithms.low: expected duration and one of slices, interval (a default "
        "has no start or end of its own), found duration",
    "[rules.a.algorithms.high]\nalgorithm = \"iceberg\"\n":
        "rules.a.algorithms.high: expected visible (a default has no start or end of its "
        "own), found none",
    "[rules.a.slippage]\nresponse = \"slow\"\n":
        "rules.a.slippage: expected max_order_bps or max_parent_bps (or both), found neither",
    "[rules.a.slippage]\nmax_order_bps = 5\nresponse = \"pause\"\nstretch = 3\n":
        "rules.a.slippage.stretch: expected stretch only with response = \"slow\", found "
        "response = 'pause'",
    "[rules.a.slippage]\nmax_order_bps = 5\nresponse = \"panic\"\n":
        "rules.a.slippage.response: expected one of 'continue', 'slow', 'passive', 'pause', "
        "'halt'",
    "[rules.a.slippage]\nmax_order_bps = -1\nresponse = \"halt\"\n":
        "rules.a.slippage.max_order_bps: expected",
    "[rules.a.slippage]\nmax_parent_bps = 5\nresponse = \"slow\"\nstretch = 1\n":
        "rules.a.slippage.stretch: expected",
    "[rules.a.slippage]\nmax_parent_bps = 5\n":
        "rules.a.slippage.response: expected",
    "[rules.a]\nmax_leverage = \"0\"\n":
        "rules.a.max_leverage: expected a decimal within 1e-18 .. 1e15, found 0",
    "rules = 3\n": "rules: expected a table, found int 3",
    "[rules]\n": "rules: expected at least one rule, found none",
    "[rules.a\n": "(syntax): expected valid TOML",
}


@pytest.mark.parametrize(("text", "line"), list(MISTAKES.items()))
def test_each_mistake_is_its_one_clear_line_and_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, line: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text(text)
    assert main(["policy", "check", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"{path}: {line}"), err[0]


def test_a_file_that_is_not_a_regular_file_is_refused_without_reading_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "check", str(tmp_path)]) == 2
    assert main(["policy", "check", str(tmp_path / "missing.toml")]) == 2
    assert len(capsys.readouterr().err.splitlines()) == 2


def test_explain_names_the_rule_and_the_execution_and_plan_an_intent_gets(
        capsys: pytest.CaptureFixture[str]) -> None:
    line = ('{"kind":"intent","venue":"binance","symbol":"BTC/USDT","quantity":"0.30",'
            '"source_run":"run-1","side":"buy","urgency":"low"}')
    assert main(["policy", "explain", str(SHIPPED), line]) == 0
    out = capsys.readouterr().out
    assert "rule: paper" in out and "default: the rule's for urgency low" in out
    assert "plan (paper): twap, 3 slice(s) in lots of 0.01, first at 0 for 0.10" in out
    assert main(["policy", "explain", str(SHIPPED), "--plane", "live",
                 line.replace("BTC", "ETH")]) == 0
    assert "rule: default" in capsys.readouterr().out
    # Medium urgency on paper: no default, one immediate order, and its plan.
    assert main(["policy", "explain", str(SHIPPED), line.replace("low", "medium")]) == 0
    assert ('plan (paper): {"order_type":"market","size":"0.30","constraints":'
            '["policy:paper"]}') in capsys.readouterr().out
    # The daemon's own refusals: a live BTC schedule shorter than min_duration.
    short = line.replace('"urgency":"low"', '"execution":{"algorithm":"twap","duration":10,'
                         '"slices":2}')
    assert main(["policy", "explain", str(SHIPPED), "--plane", "live", short]) == 0
    assert ("decision: refused, POLICY_PACING_EXCEEDED: rule live-btc: the window left, "
            "[0, 10), lasts 10: shorter than min_duration=60") in capsys.readouterr().out
    assert main(["policy", "explain", str(SHIPPED), "{nope"]) == 2
    # Seed 001's spelling: a lower-case action; an exit of the whole position, which
    # the daemon sizes when it reads the line.
    exit_ = ('{"kind":"intent","venue":"binance","symbol":"BTC/USDT","source_run":"run-1",'
             '"action":"exit","urgency":"low"}')
    assert main(["policy", "explain", str(SHIPPED), exit_]) == 0
    out = capsys.readouterr().out
    assert "rule: paper" in out and "the quantity is sized when the daemon reads" in out
    # What the daemon refuses before any rule, explain refuses as it does: a number not
    # in JSON number syntax is no intent line (exit 2, never a traceback), one out of
    # range or a side its action contradicts is the sentinel's refusal.
    twap = line.replace('"urgency":"low"', '"execution":{"algorithm":"twap","duration":60,'
                        '"slices":3}')
    for bad in ('"NaN"', '"1_0"'):
        assert main(["policy", "explain", str(SHIPPED),
                     twap.replace('"0.30"', bad)]) == 2
        assert "a decimal in JSON number syntax" in capsys.readouterr().err
    for bad, reason in (('"1e400"', "INTENT_NUMBER_OUT_OF_RANGE"),
                        ('"0"', "INTENT_QUANTITY_NOT_POSITIVE")):
        assert main(["policy", "explain", str(SHIPPED), twap.replace('"0.30"', bad)]) == 0
        assert f"decision: refused, {reason}: " in capsys.readouterr().out
    assert main(["policy", "explain", str(SHIPPED),
                 line.replace('"side":"buy"', '"side":"buy","action":"TRIM"')]) == 0
    assert "decision: refused, INTENT_SIDE_CONFLICT: " in capsys.readouterr().out
    assert main(["policy", "explain", str(SHIPPED), '{"kind":"tick","time":1}']) == 2
    assert "found a ClockTick" in capsys.readouterr().err


def test_the_digest_is_of_the_rules_whatever_their_order_or_comments(tmp_path: Path) -> None:
    text = SHIPPED.read_text()
    first, rest = text.split("[rules.paper]", 1)
    reordered = tmp_path / "r.toml"
    reordered.write_text("[rules.paper]" + rest + "\n" + first + "# the end\n")
    assert policy_file.load(reordered).sha256 == policy_file.load(SHIPPED).sha256
    reordered.write_text(reordered.read_text().replace('"0.05"', '"0.06"'))
    assert policy_file.load(reordered).sha256 != policy_file.load(SHIPPED).sha256


def test_a_file_of_too_many_rules_or_ties_is_refused_in_a_few_lines_and_quickly(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    many = tmp_path / "many.toml"
    many.write_text("".join(f'[rules.r{n}]\nmatch = {{ venue = "v{n}" }}\n'
                            for n in range(policy_file.MAX_RULES + 1)))
    assert main(["policy", "check", str(many)]) == 2
    assert capsys.readouterr().err == f"{many}: rules: expected at most 256 rules, found 257\n"
    # Every pair of 200 catch-alls ties: one line for the count, then the first ten.
    ties = tmp_path / "ties.toml"
    ties.write_text("".join(f"[rules.r{n:03d}]\n" for n in range(200)))
    assert main(["policy", "check", str(ties)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"{ties}: rules: expected no ties, found 19900 ties, the first 10 below"
    assert len(err) == 11


def test_rules_said_another_way_have_the_same_digest(tmp_path: Path) -> None:
    def digest(text: str) -> str:
        path = tmp_path / "p.toml"
        path.write_text(text)
        return policy_file.load(path).sha256

    plain = digest('[rules.a]\norder_types = ["limit", "market"]\n'
                   '[rules.a.pacing]\nmax_participation = "0.1"\n[rules.b]\nmatch = '
                   '{ venue = "x" }\n')
    assert plain == digest('[rules.b]\nmatch = { venue = "x" }\n[rules.b.pacing]\n'
                           '[rules.a]\nmatch = { symbol = "*" }\n'
                           'order_types = ["market", "limit", "market"]\n'
                           '[rules.a.pacing]\nmax_participation = "0.10"\n'
                           '[rules.a.algorithms.high]\nalgorithm = "immediate"\n')
    assert plain != digest('[rules.a]\norder_types = ["limit"]\n[rules.a.pacing]\n'
                           'max_participation = "0.1"\n[rules.b]\nmatch = { venue = "x" }\n')
    slow = digest('[rules.a.slippage]\nmax_order_bps = 5\nresponse = "slow"\n')
    assert slow == digest('[rules.a.slippage]\nresponse = "slow"\nmax_order_bps = 5\n'
                          'stretch = 2\n')  # the default, said
    assert slow != digest('[rules.a.slippage]\nmax_order_bps = 5\nresponse = "pause"\n')
    assert slow != digest('[rules.a.slippage]\nmax_order_bps = 6\nresponse = "slow"\n')
    # Caps that differ only past 28 digits are different caps, and different digests.
    assert digest('[rules.a]\nmax_leverage = "2"\n') == digest(
        '[rules.a]\nmax_leverage = "2.000"\n')
    assert digest('[rules.a]\nmax_leverage = "2"\n') != digest(
        '[rules.a]\nmax_leverage = "1.9999999999999999999999999999999"\n')
