"""Duration keys take ``"250ms"``, ``"1.5s"``, ``"5m"`` beside bare integers: the parsing
table, through the pure parser and the real loader, and the same config written either
way decodes to equal structs and equal outcome digests.

(``execd config check`` on a bad value, and a reload that rewrites an integer as a
duration: tests/process/test_durations_process.py.)
"""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from execd.config import durations
from execd.config import schema as config
from execd.config.digest import outcome_settings_sha256
from execd.config.durations import CLOCK, MS
from tests.config_texts import GOOD, LIVE

MS_RANGE = ('a duration from 0ms to 10m (an integer of milliseconds, or a number with a unit '
            'ms, s, m, h, d: "250ms", "1.5s")')


@pytest.mark.parametrize(("text", "unit", "value"), [
    ("250ms", MS, 250), ("1s", MS, 1000), ("1.5s", MS, 1500), ("5m", MS, 300_000),
    ("2h", MS, 7_200_000), ("1d", MS, 86_400_000), ("0ms", MS, 0), ("0.001s", MS, 1),
    ("1.250s", MS, 1250), ("-2s", MS, -2000),
    ("10ns", CLOCK, 10), ("250us", CLOCK, 250_000), ("1.5s", CLOCK, 1_500_000_000),
    ("5m", CLOCK, 300_000_000_000), ("0.000000001s", CLOCK, 1),
    ("99999999999999999999d", MS, 99999999999999999999 * 86_400_000),
])
def test_a_duration_is_its_exact_integer_of_the_key_s_unit(
        text: str, unit: durations.Unit, value: int) -> None:
    assert durations.parse(text, unit) == value


@pytest.mark.parametrize(("text", "unit", "message"), [
    ("fast", MS, "a duration (an integer of milliseconds"),
    ("1.5ms", MS, "a whole number of milliseconds"),
    ("0.0001s", MS, "a whole number of milliseconds"),
    ("1.5ns", CLOCK, "a whole number of nanoseconds"),
    ("250us", MS, "a unit ms, s, m, h, d:"),       # smaller than the key's own unit
    ("10ns", MS, "a unit ms, s, m, h, d:"),
    ("1 s", MS, "a duration"), ("1S", MS, "a duration"), ("s", MS, "a duration"),
    ("1.s", MS, "a duration"), (".5s", MS, "a duration"), ("+1s", MS, "a duration"),
    ("1e3ms", MS, "a duration"), ("1m30s", MS, "a duration"), ("1_000ms", MS, "a duration"),
    ("", MS, "a duration"), ("1" * 21 + "s", MS, "a duration"),
    ("1.0000000001s", CLOCK, "a duration"),      # more decimals than nanoseconds have
    ("\u0661s", MS, "a duration"),               # ARABIC-INDIC DIGIT ONE: not ASCII
])
def test_what_is_not_a_duration_of_the_key_says_what_it_expected(
        text: str, unit: durations.Unit, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        durations.parse(text, unit)


def test_bounds_apply_after_conversion_and_speak_in_durations() -> None:
    assert durations.parse("10m", MS, 0, 600_000) == 600_000
    for text in ("600001ms", "601s", "-1ms", "1d"):
        with pytest.raises(ValueError, match=f"^{re.escape(MS_RANGE)}$"):
            durations.parse(text, MS, 0, 600_000)
    assert durations.expected(CLOCK, 1) == (
        'a duration of at least 1ns (an integer of nanoseconds, the wall clock\'s unit, or a '
        'number with a unit ns, us, ms, s, m, h, d: "250ms", "1.5s")')
    assert durations.show(1500, MS) == "1.5s" and durations.show(1500, CLOCK) == "1500ns"


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "execd.toml"
    path.write_text(text)
    with pytest.raises(config.ConfigError) as caught:
        config.load(path)
    return [str(p) for p in caught.value.problems]


def loads(tmp_path: Path, text: str, name: str = "execd.toml") -> config.Config:
    path = tmp_path / name
    path.write_text(text)
    return config.load(path).config


PACING = "[risk.limits]\nmax_orders = 5\nrate_window = {w}\n"
WALL = "[clock]\nkind = 'wall'\n"


@pytest.mark.parametrize(("extra", "line"), [
    ("settle_ms = 'fast'", f"daemon.settle_ms: expected {MS_RANGE}, found 'fast'"),
    ("settle_ms = '11m'", f"daemon.settle_ms: expected {MS_RANGE}, found '11m'"),
    ("settle_ms = '-5s'", f"daemon.settle_ms: expected {MS_RANGE}, found '-5s'"),
    ("settle_ms = '99999999999999999999d'",
     f"daemon.settle_ms: expected {MS_RANGE}, found '99999999999999999999d'"),
    ("settle_ms = '0.5ms'", "daemon.settle_ms: expected a whole number of milliseconds, "
     "found '0.5ms'"),
    ("settle_ms = true", f"daemon.settle_ms: expected {MS_RANGE}, found true"),
    ("settle_ms = 1.5", f"daemon.settle_ms: expected {MS_RANGE}, found float 1.5"),
    ("settle_ms = [250]", f"daemon.settle_ms: expected {MS_RANGE}, found an array"),
    # A bare integer reads as it always has: its bounds in the key's own unit.
    ("settle_ms = -5", "daemon.settle_ms: expected an integer >= 0 <= 600000, found int -5"),
    ("settle_ms = 600001",
     "daemon.settle_ms: expected an integer >= 0 <= 600000, found int 600001"),
])
def test_a_bad_duration_has_its_file_key_expected_found_line(
        tmp_path: Path, extra: str, line: str) -> None:
    text = GOOD.replace('ledger_dir = "var/g"\n', f'ledger_dir = "var/g"\n{extra}\n')
    assert problems(tmp_path, text) == [f"{tmp_path / 'execd.toml'}: {line}"]


def test_a_window_takes_a_duration_only_on_the_wall_clock(tmp_path: Path) -> None:
    """Clock units are the producer's own on the logical clock (README.md, "Input"), so
    "5m" means nothing there; on the wall clock they are nanoseconds."""
    line = ("risk.limits.rate_window: expected an integer of clock units (under clock.kind "
            "= 'logical' the producer's own unit, in which a duration means nothing; "
            "durations need clock.kind = \"wall\", whose unit is nanoseconds), found '5m'")
    assert problems(tmp_path, GOOD + PACING.format(w="'5m'")) == [
        f"{tmp_path / 'execd.toml'}: {line}"]
    assert loads(tmp_path, GOOD + PACING.format(w=7)).risk.limits.rate_window == 7
    wall = loads(tmp_path, GOOD + WALL + PACING.format(w="'5m'"))
    assert wall.risk.limits.rate_window == 300_000_000_000
    assert problems(tmp_path, GOOD + WALL + PACING.format(w="'1.5ns'")) == [
        f"{tmp_path / 'execd.toml'}: risk.limits.rate_window: expected a whole number of "
        "nanoseconds, found '1.5ns'"]
    # The checkpoint interval is in the same clock units (the records' own times).
    assert problems(tmp_path, GOOD + "[ledger]\ncheckpoint_interval = '5m'\n") == [
        f"{tmp_path / 'execd.toml'}: "
        + line.replace("risk.limits.rate_window", "ledger.checkpoint_interval")]
    assert loads(tmp_path, GOOD + WALL + "[ledger]\ncheckpoint_interval = '15m'\n"
                 ).ledger.checkpoint_interval == 900_000_000_000
    # Past the ledger's time range (2**63-1 ns, about 106751 days), written either way.
    for huge in ("'106752d'", str(2**63)):
        found = problems(tmp_path, GOOD + WALL + PACING.format(w=huge))
        assert len(found) == 1 and "risk.limits.rate_window: expected a" in found[0], found
    # A clock.kind that is no clock is its own line; the window's string is refused too.
    found = problems(tmp_path, GOOD + "[clock]\nkind = 'sundial'\n" + PACING.format(w="'5m'"))
    assert any("clock.kind: expected one of" in p for p in found)
    assert any("under clock.kind = 'sundial'" in p for p in found)


def test_every_problem_is_still_reported_at_once(tmp_path: Path) -> None:
    text = GOOD.replace('ledger_dir = "var/g"\n',
                        'ledger_dir = "var/g"\nsettle_ms = "x"\npoll_interval_ms = "1.5ms"\n')
    text += "[control]\ntimeout_ms = '1h'\nrequest_timeout_ms = 5\n"
    assert [p.split(": ")[1] for p in problems(tmp_path, text)] == [
        "daemon.poll_interval_ms", "daemon.settle_ms", "control.timeout_ms",
        "control.request_timeout_ms"]


# LIVE (a ccxt venue on the wall clock) with every kind of duration key set.
INTEGERS = LIVE + """
[risk.limits]
max_orders = 10
rate_window = 60000000000
failure_limit = 3
failure_window = 1500000000
cooldown = 300000000000

[control]
timeout_ms = 10000
request_timeout_ms = 2500

[ledger]
head_interval_ms = 0
head_log_ms = 3600000

[venues.x.limits]
rate_window = 1000
max_orders = 1
"""

DURATIONS = (INTEGERS.replace("60000000000", "'1m'").replace("1500000000", "'1.5s'")
             .replace("300000000000", "'5m'").replace("= 10000\n", "= '10s'\n")
             .replace("2500", "'2.5s'").replace("head_interval_ms = 0", "head_interval_ms = '0s'")
             .replace("3600000", "'1h'").replace("rate_window = 1000\n", "rate_window = '1us'\n"))


def test_the_same_config_with_durations_or_integers_is_the_same_config(tmp_path: Path) -> None:
    """Equal structs, so a reload sees no change, and equal outcome digests, so the start
    and config records carry the same settings however the file spells them."""
    daemon_ms = {"poll_interval_ms": ("20", "'20ms'"), "settle_ms": ("250", "'0.25s'")}
    ccxt_ms = {"timeout_ms": ("30000", "'30s'"), "order_timeout_ms": ("120000", "'2m'"),
               "resend_window_ms": ("86400000", "'1d'"), "lookup_delay_ms": ("0", "'0ms'"),
               "acceptance_window_ms": ("10000", "'10s'"), "rate_limit_ms": ("50", "'50ms'")}

    def spelled(text: str, which: int) -> str:
        text = text.replace('ledger_dir = "var/g"\n', 'ledger_dir = "var/g"\n' + "".join(
            f"{k} = {v[which]}\n" for k, v in daemon_ms.items()))
        return text.replace("credentials_env = 'X'\n", "credentials_env = 'X'\n" + "".join(
            f"{k} = {v[which]}\n" for k, v in ccxt_ms.items()))

    plain = loads(tmp_path, spelled(INTEGERS, 0), "plain.toml")
    written = loads(tmp_path, spelled(DURATIONS, 1), "durations.toml")
    assert "'1m'" in spelled(DURATIONS, 1) and "'30s'" in spelled(DURATIONS, 1)
    assert written == plain
    assert msgspec.json.encode(written) == msgspec.json.encode(plain)
    assert outcome_settings_sha256(written) == outcome_settings_sha256(plain)
    assert written.risk.limits.cooldown == 300_000_000_000
    assert written.venues["x"].limits.rate_window == 1000
    ccxt = written.venues["x"].ccxt
    assert ccxt is not None and (ccxt.order_timeout_ms, ccxt.resend_window_ms) == (120_000,
                                                                                  86_400_000)
    assert written.control.request_timeout_ms == 2500 and written.ledger.head_log_ms == 3_600_000


@pytest.mark.parametrize("text", ["01s", "00s", "007ms", "-01s", "00.5s"])
def test_a_leading_zero_is_refused_as_in_a_json_number(text: str) -> None:
    with pytest.raises(ValueError, match=r"^a duration"):
        durations.parse(text, MS)
    assert durations.parse("0.5s", MS) == 500 and durations.parse("0s", MS) == 0
    assert durations.parse("10s", MS) == 10_000


def test_a_bound_is_printed_exactly(tmp_path: Path) -> None:
    """The window's bound is 2**63-1 ns, the ledger's time range: "106751d 23h" was
    rounded, and a value inside the range printed past it."""
    assert durations.show(2**63 - 1, CLOCK) == "9223372036854775807ns"
    assert durations.show(12_250, MS) == "12250ms"       # duration() would say 12.2s
    assert durations.show(600_000, MS) == "10m" and durations.show(1500, MS) == "1.5s"
    found = problems(tmp_path, GOOD + WALL + PACING.format(w="'106752d'"))
    assert found == [f"{tmp_path / 'execd.toml'}: risk.limits.rate_window: expected a "
                     "duration from 1ns to 9223372036854775807ns (an integer of nanoseconds, "
                     "the wall clock's unit, or a number with a unit ns, us, ms, s, m, h, d: "
                     "\"250ms\", \"1.5s\"), found '106752d'"]
    # What is printed reads back as the very bound.
    assert durations.parse(durations.show(2**63 - 1, CLOCK), CLOCK) == 2**63 - 1
    assert durations.parse(durations.show(12_250, MS), MS) == 12_250
