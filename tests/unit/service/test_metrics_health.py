"""The endpoint's other two answers, /healthz and /readyz, its 404s, and the status gauges.

/healthz must never say "alive" about a daemon whose actor, or event loop, has stopped
making progress for longer than allowed; /readyz must never say "ready" while the
daemon would not execute an intent.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from execd.config import schema as config
from execd.service.liveness import Liveness, Pulse
from execd.service.metrics import Metrics, Snapshot, readiness
from tests.config_texts import GOOD
from tests.helpers import wait_for

AFTER = 0.2  # seconds: how long an actor may work without a beat
VENUES = ("binance", "kraken")
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape, keyed by (sample name, labels)."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def snapshot(**changes: object) -> Snapshot:
    fields: dict[str, object] = dict(
        queues={}, trading_state="ACTIVE", venues={"binance": "ready"}, ready=True,
        draining=False, ledger_last_seq=7, reloads=0, reloads_refused=0)
    fields.update(changes)
    return Snapshot(**fields)  # type: ignore[arg-type]


def get(url: str) -> tuple[int, str]:
    """Status and body of a GET, whatever the status."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.fixture
def endpoint() -> Iterator[tuple[Metrics, str]]:
    metrics = Metrics(venues=VENUES)
    host, port = metrics.serve("127.0.0.1", 0)
    try:
        yield metrics, f"http://{host}:{port}"
    finally:
        metrics.close()


@pytest.mark.parametrize(("changes", "why"), [
    ({}, None),
    ({"trading_state": "REDUCING"}, None),
    ({"ready": False}, "starting: recovery or the venues' reconciliation is not done"),
    ({"draining": True}, "draining: the daemon is stopping"),
    ({"ready": False, "draining": True}, "draining: the daemon is stopping"),
    ({"trading_state": "HALTED"}, "trading state HALTED"),
    ({"venues": {"binance": "reconciling: 2 orders", "kraken": "ready"}},
     "venue binance reconciling: 2 orders"),
    ({"ready": False, "venues": {"binance": "cannot start: no route"}},
     "starting: recovery or the venues' reconciliation is not done; "
     "venue binance cannot start: no route"),
])
def test_readiness_says_why_not(changes: dict[str, object], why: str | None) -> None:
    assert readiness(snapshot(**changes)) == why


def test_readyz_follows_the_state(endpoint: tuple[Metrics, str]) -> None:
    metrics, url = endpoint
    assert get(url + "/readyz") == (503, "no state yet\n")
    current = [snapshot(ready=False)]
    metrics.snapshot(lambda: current[0])
    assert get(url + "/readyz") == (
        503, "starting: recovery or the venues' reconciliation is not done\n")
    current[0] = snapshot()
    assert get(url + "/readyz") == (200, "ready\n")
    current[0] = snapshot(trading_state="HALTED")
    assert get(url + "/readyz") == (503, "trading state HALTED\n")
    current[0] = snapshot(trading_state="REDUCING")
    assert get(url + "/readyz") == (200, "ready\n")
    current[0] = snapshot(draining=True)
    assert get(url + "/readyz") == (503, "draining: the daemon is stopping\n")

    def broken() -> Snapshot:
        raise RuntimeError("being rebuilt")

    metrics.snapshot(broken)
    assert get(url + "/readyz") == (503, "state unreadable: RuntimeError\n")


def test_healthz_turns_503_while_an_actor_or_the_loop_is_stuck(
        endpoint: tuple[Metrics, str]) -> None:
    metrics, url = endpoint
    assert get(url + "/healthz") == (200, "alive (no watch)\n")
    liveness, loop = Liveness(), Pulse("loop")
    reader = liveness.pulse("reader")
    metrics.watch(liveness, AFTER, loop)
    # Waiting for input is never stuck, however long it lasts.
    reader.rest()
    loop.busy()
    assert get(url + "/healthz") == (200, "alive\n")

    # The reader takes work and never beats again: stuck once AFTER has passed, seen
    # by the server thread's own looks between requests.
    reader.busy()
    wait_for(lambda: get(url + "/healthz")[0] == 503 and "reader" in get(url + "/healthz")[1],
             interval=0.05)
    code, body = get(url + "/healthz")
    assert code == 503 and body.startswith("stuck: ") and "reader (" in body
    samples = parse(get(url + "/metrics")[1])
    assert value(samples, "execd_watchdog_ok") == 0
    assert value(samples, "execd_watchdog_stuck_seconds", actor="reader") > AFTER
    reader.rest()
    loop.busy()
    wait_for(lambda: get(url + "/healthz") == (200, "alive\n"), interval=0.05)

    # The event loop's pulse is never idle: not beaten for AFTER, the loop is stuck.
    wait_for(lambda: "loop (" in get(url + "/healthz")[1], interval=0.05)
    assert value(parse(get(url + "/metrics")[1]), "execd_watchdog_ok") == 0
    loop.busy()
    wait_for(lambda: get(url + "/healthz") == (200, "alive\n"), interval=0.05)
    assert value(parse(get(url + "/metrics")[1]), "execd_watchdog_ok") == 1


def test_the_supervisors_judgement_is_not_moved_by_the_endpoints(
        endpoint: tuple[Metrics, str]) -> None:
    """The observer has a memory of its own: the watchdog sees what it would have seen."""
    metrics, url = endpoint
    liveness = Liveness()
    sentinel = liveness.pulse("sentinel")
    sentinel.busy()
    assert liveness.stuck(0.0, 1.0) == {}
    metrics.watch(liveness, AFTER)
    for _ in range(3):
        get(url + "/healthz")
    # The supervisor's first look was at 0.0: by its clock, 5 s without a beat.
    assert liveness.stuck(5.0, 1.0) == {"sentinel": 5.0}


def test_every_other_path_is_404(endpoint: tuple[Metrics, str]) -> None:
    _, url = endpoint
    for path in ("/", "/metric", "/metrics/", "/favicon.ico", "/healthz/x", "/ready",
                 "/../metrics", "/METRICS"):
        code, body = get(url + path)
        assert code == 404, path
        assert body == "not found: this endpoint serves /metrics, /healthz and /readyz\n"


def test_metrics_keeps_its_query(endpoint: tuple[Metrics, str]) -> None:
    metrics, url = endpoint
    metrics.ingested(3)
    code, body = get(url + "/metrics?name[]=execd_intents_ingested_total")
    assert code == 200
    assert parse(body) == {("execd_intents_ingested_total", frozenset()): 3}


def test_status_gauges(endpoint: tuple[Metrics, str]) -> None:
    metrics, url = endpoint
    current = [snapshot()]
    metrics.snapshot(lambda: current[0])
    samples = parse(get(url + "/metrics")[1])
    assert value(samples, "execd_inbox_files") == 0
    assert value(samples, "execd_inbox_oldest_file_age_seconds") == 0
    # No outcome yet, no start time known: absent, never a made-up 0.
    assert not {name for name, _ in samples} & {"execd_last_outcome_time_seconds",
                                                "execd_start_time_seconds"}
    assert "execd_watchdog_ok" not in {name for name, _ in samples}  # no watch set

    current[0] = snapshot(inbox_files=3, inbox_oldest_age=90.5,
                          last_outcome_time=1_796_000_000.25, start_time=1_795_999_000.5)
    samples = parse(get(url + "/metrics")[1])
    assert value(samples, "execd_inbox_files") == 3
    assert value(samples, "execd_inbox_oldest_file_age_seconds") == 90.5
    assert value(samples, "execd_last_outcome_time_seconds") == 1_796_000_000.25
    assert value(samples, "execd_start_time_seconds") == 1_795_999_000.5


@pytest.mark.parametrize(("value", "problem"), [
    ("999", "metrics.stuck_after_ms: expected an integer >= 1000 <= 600000, found int 999"),
    ("'100ms'", "metrics.stuck_after_ms: expected a duration from 1s to 10m"),
])
def test_stuck_after_is_at_least_a_second(tmp_path: Path, value: str, problem: str) -> None:
    """Below a second, one slow listing of a big inbox (the reader beats per file) made
    /healthz flap between 503 and 200 on a daemon that was working."""
    path = tmp_path / "execd.toml"
    path.write_text(GOOD + f"[metrics]\nlisten = '127.0.0.1:0'\nstuck_after_ms = {value}\n")
    with pytest.raises(config.ConfigError) as caught:
        config.load(path)
    assert [problem in str(p) for p in caught.value.problems] == [True], caught.value.problems
    path.write_text(GOOD + "[metrics]\nlisten = '127.0.0.1:0'\nstuck_after_ms = '1s'\n")
    metrics = config.load(path).config.metrics
    assert metrics is not None and metrics.stuck_after_ms == 1000
