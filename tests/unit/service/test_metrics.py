"""The Prometheus endpoint: served on loopback, scraped over HTTP, parsed back.

Also keeps deploy/prometheus/alerts.yml honest: every metric its expressions name
must be one that execd exports.
"""

from __future__ import annotations

import re
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

import execd
from execd.service.liveness import Liveness
from execd.service.metrics import Metrics, Snapshot, parse_listen
from tests.helpers import ROOT

PROMETHEUS = ROOT / "deploy" / "prometheus"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
# The venues of the config these Metrics serve: the only venue label values.
VENUES = ("binance", "kraken")


def parse(text: str) -> Samples:
    """Every sample of a scrape, keyed by (sample name, labels)."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def names(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        return parse(response.read().decode())


def snapshot(**changes: object) -> Snapshot:
    fields: dict[str, object] = dict(
        queues={"sentinel": 0, "ledger": 8}, queue_capacity={"sentinel": 4, "ledger": 8},
        trading_state="ACTIVE",
        venues={"paper": "ready", "binance": "reconciling: 2 orders not at the venue; ...",
                "kraken": "starting", "okx": "cannot start: no credentials"},
        ready=True, draining=False, ledger_last_seq=41, reloads=3, reloads_refused=1)
    fields.update(changes)
    return Snapshot(**fields)  # type: ignore[arg-type]


@pytest.fixture
def served() -> Iterator[tuple[Metrics, str]]:
    metrics = Metrics(venues=VENUES)
    host, port = metrics.serve("127.0.0.1", 0)
    assert host == "127.0.0.1"
    assert port > 0
    try:
        yield metrics, f"http://{host}:{port}/metrics"
    finally:
        metrics.close()


def test_outcomes_are_counted_by_labels(served: tuple[Metrics, str]) -> None:
    metrics, url = served
    metrics.ingested(5)
    metrics.ingested(2)
    for _ in range(3):
        metrics.outcome("FILLED", None, "binance", "paper")
    metrics.outcome("REJECTED", "RISK_NOTIONAL_EXCEEDED", "binance", "paper")
    metrics.outcome("REJECTED", "RISK_NOTIONAL_EXCEEDED", "binance", "paper")
    metrics.outcome("FAILED", "EXECUTION_REJECTED", "kraken", "live")

    samples = scrape(url)
    assert value(samples, "execd_intents_ingested_total") == 7
    outcomes = {labels: v for (name, labels), v in samples.items()
                if name == "execd_outcomes_total"}
    assert outcomes == {
        frozenset({("status", "FILLED"), ("reason", ""), ("venue", "binance"),
                   ("plane", "paper")}): 3,
        frozenset({("status", "REJECTED"), ("reason", "RISK_NOTIONAL_EXCEEDED"),
                   ("venue", "binance"), ("plane", "paper")}): 2,
        frozenset({("status", "FAILED"), ("reason", "EXECUTION_REJECTED"),
                   ("venue", "kraken"), ("plane", "live")}): 1,
    }
    assert value(samples, "execd_build_info", version=execd.__version__) == 1
    # No snapshot function yet: no gauges, and that is not an error.
    assert "execd_ready" not in names(samples)
    assert value(samples, "execd_snapshot_errors_total") == 0

    metrics.outcome("FILLED", None, "binance", "paper")
    assert value(scrape(url), "execd_outcomes_total", status="FILLED", reason="",
                 venue="binance", plane="paper") == 4


def test_commits_fill_both_ledger_histograms(served: tuple[Metrics, str]) -> None:
    metrics, url = served
    # Binary fractions, so the sums are exact.
    metrics.committed(1, 2.0**-15)
    metrics.committed(3, 0.0625)
    metrics.committed(8192, 0.5)
    metrics.committed(20000, 2.0)

    samples = scrape(url)
    assert value(samples, "execd_ledger_fsync_seconds_count") == 4
    assert value(samples, "execd_ledger_fsync_seconds_sum") == 2.5625 + 2.0**-15
    fsync = {float(dict(labels)["le"]): v for (name, labels), v in samples.items()
             if name == "execd_ledger_fsync_seconds_bucket"}
    assert fsync[0.00005] == 1
    assert fsync[0.05] == 1
    assert fsync[0.1] == 2
    assert fsync[0.5] == 3
    assert fsync[1.0] == 3
    assert fsync[float("inf")] == 4

    assert value(samples, "execd_ledger_commit_records_count") == 4
    assert value(samples, "execd_ledger_commit_records_sum") == 1 + 3 + 8192 + 20000
    records = {float(dict(labels)["le"]): v for (name, labels), v in samples.items()
               if name == "execd_ledger_commit_records_bucket"}
    assert [edge for edge in records if edge != float("inf")] == [2.0**i for i in range(15)]
    assert records[1] == 1
    assert records[2] == 1
    assert records[4] == 2
    assert records[4096] == 2
    assert records[8192] == 3
    assert records[16384] == 3
    assert records[float("inf")] == 4


def test_venue_calls_are_timed_by_venue_call_and_result(served: tuple[Metrics, str]) -> None:
    metrics, url = served
    metrics.venue_call("binance", "create_order", 0.25, "ok")
    metrics.venue_call("binance", "create_order", 0.5, "ok")
    metrics.venue_call("binance", "create_order", 3.0, "error")
    metrics.venue_call("binance", "fetch_order", 0.0005, "ok")

    samples = scrape(url)
    ok = {"venue": "binance", "call": "create_order", "result": "ok"}
    assert value(samples, "execd_venue_call_seconds_count", **ok) == 2
    assert value(samples, "execd_venue_call_seconds_sum", **ok) == 0.75
    assert value(samples, "execd_venue_call_seconds_bucket", le="0.1", **ok) == 0
    assert value(samples, "execd_venue_call_seconds_bucket", le="0.25", **ok) == 1
    assert value(samples, "execd_venue_call_seconds_bucket", le="0.5", **ok) == 2
    error = {"venue": "binance", "call": "create_order", "result": "error"}
    assert value(samples, "execd_venue_call_seconds_count", **error) == 1
    assert value(samples, "execd_venue_call_seconds_bucket", le="2.0", **error) == 0
    assert value(samples, "execd_venue_call_seconds_bucket", le="5.0", **error) == 1
    fetch = {"venue": "binance", "call": "fetch_order", "result": "ok"}
    assert value(samples, "execd_venue_call_seconds_bucket", le="0.001", **fetch) == 1


def test_gauges_come_from_the_snapshot_at_scrape_time(served: tuple[Metrics, str]) -> None:
    metrics, url = served
    current = [snapshot()]
    metrics.snapshot(lambda: current[0])

    samples = scrape(url)
    assert value(samples, "execd_queue_depth", queue="sentinel") == 0
    assert value(samples, "execd_queue_depth", queue="ledger") == 8
    assert value(samples, "execd_queue_capacity", queue="ledger") == 8
    assert value(samples, "execd_venue_ready", venue="paper") == 1
    assert value(samples, "execd_venue_reconciling", venue="paper") == 0
    assert value(samples, "execd_venue_ready", venue="binance") == 0
    assert value(samples, "execd_venue_reconciling", venue="binance") == 1
    for venue in ("kraken", "okx"):
        assert value(samples, "execd_venue_ready", venue=venue) == 0
        assert value(samples, "execd_venue_reconciling", venue=venue) == 0
    assert value(samples, "execd_ready") == 1
    assert value(samples, "execd_draining") == 0
    assert value(samples, "execd_ledger_last_seq") == 41
    assert value(samples, "execd_config_reloads_total", result="applied") == 3
    assert value(samples, "execd_config_reloads_total", result="refused") == 1

    current[0] = snapshot(ready=False, draining=True, ledger_last_seq=42, queues={},
                          venues={"binance": "ready"})
    samples = scrape(url)
    assert value(samples, "execd_ready") == 0
    assert value(samples, "execd_draining") == 1
    assert value(samples, "execd_ledger_last_seq") == 42
    assert value(samples, "execd_venue_ready", venue="binance") == 1
    assert "execd_queue_depth" not in names(samples)
    assert ("execd_venue_ready", frozenset({("venue", "paper")})) not in samples


@pytest.mark.parametrize("state", ["ACTIVE", "REDUCING", "HALTED"])
def test_trading_state_is_one_hot(served: tuple[Metrics, str], state: str) -> None:
    metrics, url = served
    metrics.snapshot(lambda: snapshot(trading_state=state))
    samples = scrape(url)
    states = {dict(labels)["state"]: v for (name, labels), v in samples.items()
              if name == "execd_trading_state"}
    assert states == {s: (1.0 if s == state else 0.0) for s in ("ACTIVE", "REDUCING", "HALTED")}


def test_a_failing_snapshot_drops_only_the_gauges(served: tuple[Metrics, str]) -> None:
    metrics, url = served
    metrics.outcome("FILLED", None, "binance", "paper")
    metrics.committed(2, 0.001)

    def broken() -> Snapshot:
        raise RuntimeError("the daemon's state is being rebuilt")

    metrics.snapshot(broken)
    samples = scrape(url)
    assert value(samples, "execd_outcomes_total", status="FILLED", reason="",
                 venue="binance", plane="paper") == 1
    assert value(samples, "execd_ledger_commit_records_count") == 1
    assert value(samples, "execd_snapshot_errors_total") == 1
    assert not {"execd_ready", "execd_queue_depth", "execd_trading_state"} & names(samples)

    # A snapshot that is built but malformed fails while the gauges are made: same thing.
    metrics.snapshot(lambda: snapshot(queues={"ledger": "many"}))
    samples = scrape(url)
    assert value(samples, "execd_snapshot_errors_total") == 2
    assert "execd_queue_depth" not in names(samples)
    assert value(samples, "execd_build_info", version=execd.__version__) == 1

    metrics.snapshot(snapshot)
    assert value(scrape(url), "execd_ready") == 1


def test_a_scrape_can_ask_for_one_metric(served: tuple[Metrics, str]) -> None:
    # prometheus_client finds a custom collector for ?name[]= only through describe().
    metrics, url = served
    metrics.outcome("FILLED", None, "binance", "paper")
    metrics.ingested(1)
    samples = scrape(url + "?name[]=execd_outcomes_total")
    assert samples == {("execd_outcomes_total", frozenset({
        ("status", "FILLED"), ("reason", ""), ("venue", "binance"), ("plane", "paper")})): 1}


def test_each_metrics_has_its_own_registry() -> None:
    first, second = Metrics(venues=VENUES), Metrics(venues=VENUES)
    first.outcome("FILLED", None, "binance", "paper")
    first.committed(1, 0.001)
    assert value(parse(first.render().decode()), "execd_outcomes_total", status="FILLED",
                 reason="", venue="binance", plane="paper") == 1
    other = parse(second.render().decode())
    assert "execd_outcomes_total" not in names(other)
    assert value(other, "execd_ledger_commit_records_count") == 0


def test_scrapes_while_the_event_loop_counts() -> None:
    # 500 configured venues: the outcome dict grows while it is scraped.
    metrics = Metrics(venues=[f"venue-{i}" for i in range(500)])
    host, port = metrics.serve("127.0.0.1", 0)
    url = f"http://{host}:{port}/metrics"
    metrics.snapshot(snapshot)
    done = threading.Event()
    failures: list[BaseException] = []

    def scraper() -> None:
        try:
            while not done.is_set():
                scrape(url)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread's assert
            failures.append(exc)

    thread = threading.Thread(target=scraper)
    thread.start()
    try:
        for i in range(200_000):
            metrics.outcome("FILLED", None, f"venue-{i % 500}", "paper")
    finally:
        done.set()
        thread.join()
        metrics.close()
    assert failures == []
    samples = render(metrics)
    assert sum(v for (name, _), v in samples.items() if name == "execd_outcomes_total") == 200_000
    assert len([n for n, _ in samples if n == "execd_outcomes_total"]) == 500


def render(metrics: Metrics) -> Samples:
    return parse(metrics.render().decode())


def test_label_values_come_only_from_the_config_and_the_code() -> None:
    """200,000 made-up venues, reasons, statuses and planes make no new series."""
    metrics = Metrics(venues=VENUES)
    for i in range(200_000):
        metrics.outcome("REJECTED", "INTENT_UNKNOWN_VENUE", f"venue-{i}", "")
    metrics.outcome("REJECTED", "NOT_A_CODE", "binance", "paper")
    metrics.outcome("NOT_A_STATUS", None, "kraken", "moon")
    metrics.outcome("QUARANTINED", "INPUT_MALFORMED_JSON", "", "")
    metrics.venue_call("made-up", "create_order", 0.1, "ok")
    metrics.venue_call("binance", "create_order", 0.1, "ok")
    samples = render(metrics)
    outcomes = {labels: v for (name, labels), v in samples.items()
                if name == "execd_outcomes_total"}
    assert outcomes == {
        frozenset({("status", "REJECTED"), ("reason", "INTENT_UNKNOWN_VENUE"),
                   ("venue", "(unknown)"), ("plane", "")}): 200_000,
        frozenset({("status", "REJECTED"), ("reason", "(other)"), ("venue", "binance"),
                   ("plane", "paper")}): 1,
        frozenset({("status", "(other)"), ("reason", ""), ("venue", "kraken"),
                   ("plane", "(other)")}): 1,
        frozenset({("status", "QUARANTINED"), ("reason", "INPUT_MALFORMED_JSON"),
                   ("venue", ""), ("plane", "")}): 1,
    }
    calls = {dict(labels)["venue"] for (name, labels) in samples
             if name == "execd_venue_call_seconds_count"}
    assert calls == {"(unknown)", "binance"}
    # Nothing of the made-up values is kept, either.
    assert len(metrics._outcomes) == 4


def test_close_is_idempotent_and_frees_the_port() -> None:
    metrics = Metrics(venues=VENUES)
    metrics.close()  # never served: nothing to do
    host, port = metrics.serve("127.0.0.1", 0)
    with pytest.raises(RuntimeError, match="already"):
        metrics.serve("127.0.0.1", 0)
    scrape(f"http://{host}:{port}/metrics")
    metrics.close()
    metrics.close()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10)
    # A restarted daemon can take the same port again.
    again = Metrics(venues=VENUES)
    try:
        assert again.serve(host, port) == (host, port)
        scrape(f"http://{host}:{port}/metrics")
    finally:
        again.close()


@pytest.mark.parametrize("host", ["0.0.0.0", "10.0.0.1", "::", "localhost", ""])
def test_serve_refuses_anything_but_loopback(host: str) -> None:
    metrics = Metrics(venues=VENUES)
    with pytest.raises(ValueError, match="loopback"):
        metrics.serve(host, 0)
    metrics.close()


def test_serve_on_ipv6_loopback() -> None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this host")
    metrics = Metrics(venues=VENUES)
    try:
        host, port = metrics.serve(*parse_listen("[::1]:0"))
        assert host == "::1"
        metrics.ingested(1)
        assert value(scrape(f"http://[::1]:{port}/metrics"),
                     "execd_intents_ingested_total") == 1
    finally:
        metrics.close()


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:9464", ("127.0.0.1", 9464)),
    ("127.1.2.3:0", ("127.1.2.3", 0)),
    ("127.0.0.1:65535", ("127.0.0.1", 65535)),
    ("[::1]:9464", ("::1", 9464)),
    ("[0:0:0:0:0:0:0:1]:9464", ("::1", 9464)),
])
def test_parse_listen_accepts_loopback(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("0.0.0.0:9464", "not a loopback address"),
    ("10.0.0.1:9464", "not a loopback address"),
    ("[::]:9464", "not a loopback address"),
    ("[::ffff:127.0.0.1]:9464", "not a loopback address"),
    ("localhost:9464", "not an IP address"),
    ("127.0.0.1", "has no port"),
    ("[::1]", "has no port"),
    ("127.0.0.1:", "port '' is not an integer"),
    ("127.0.0.1:65536", "port '65536' is not an integer from 0 to 65535"),
    ("127.0.0.1:-1", "port '-1'"),
    ("127.0.0.1:+80", "port '+80'"),
    ("127.0.0.1:8_0", "port '8_0'"),
    ("127.0.0.1: 80", "port ' 80'"),
    ("::1:9464", "must be in brackets"),
    ("[127.0.0.1]:9464", "brackets are for IPv6 only"),
    ("", "has no port"),
])
def test_parse_listen_refuses(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_listen(text)


def exported_names() -> set[str]:
    """Every sample name execd exports, with each method exercised once."""
    metrics = Metrics(venues=VENUES)
    metrics.ingested(1)
    metrics.outcome("FILLED", None, "binance", "paper")
    metrics.committed(1, 0.001)
    metrics.venue_call("binance", "create_order", 0.1, "ok")
    metrics.drifted()
    metrics.snapshot(lambda: snapshot(last_outcome_time=1.0, start_time=1.0,
                                      drift={("binance", "BTC"): 0.5}))
    metrics.watch(Liveness(), 10.0)
    return names(parse(metrics.render().decode()))


def expressions(rules: str) -> list[str]:
    """The ``expr:`` values of a rules file, one-line or ``|`` blocks (no YAML library)."""
    found: list[str] = []
    lines = rules.splitlines()
    for i, line in enumerate(lines):
        stripped = line.lstrip()
        if not stripped.startswith("expr:"):
            continue
        rest = stripped.removeprefix("expr:")
        if rest.strip() in ("|", ">", "|-", ">-"):
            indent = len(line) - len(stripped)
            block = []
            for following in lines[i + 1:]:
                if following.strip() and len(following) - len(following.lstrip()) <= indent:
                    break
                block.append(following)
            found.append("\n".join(block))
        else:
            found.append(rest)
    return found


def test_alert_rules_name_only_exported_metrics() -> None:
    rules = (PROMETHEUS / "alerts.yml").read_text()
    alerts = re.findall(r"^\s*- alert: (\w+)\s*$", rules, re.MULTILINE)
    exprs = expressions(rules)
    assert len(alerts) >= 10
    assert len(alerts) == len(set(alerts)) == len(exprs)
    used = {name for expr in exprs for name in re.findall(r"execd_[a-z_]+", expr)}
    assert used, "no execd metric in any expression"
    exported = exported_names()
    assert used - exported == set()
    # Every rule carries a severity and both annotations.
    for block in re.split(r"^\s*- alert: ", rules, flags=re.MULTILINE)[1:]:
        assert re.search(r"^\s+severity: (critical|warning)$", block, re.MULTILINE), block
        assert re.search(r"^\s+summary: ", block, re.MULTILINE), block
        assert re.search(r"^\s+description: ", block, re.MULTILINE), block


def rule(rules: str, alert: str) -> str:
    """The text of one alert's rule, up to the next rule."""
    [block] = [b for b in re.split(r"^\s*- alert: ", rules, flags=re.MULTILINE)[1:]
               if b.startswith(alert + "\n")]
    return block


def test_the_inbox_alert_is_the_oldest_files_age() -> None:
    """Before: "files wait and no outcome for 10 minutes" fired while files were consumed
    (each waits out settle_ms, so one or two always wait, and ticks make no outcome) and
    stayed quiet while one unclaimable file waited for good beside consumed ones."""
    block = rule((PROMETHEUS / "alerts.yml").read_text(), "ExecdInboxNotConsumed")
    [expr] = expressions(block)
    assert expr.strip() == "execd_inbox_oldest_file_age_seconds > 600"
    assert re.search(r"^\s+for: 5m$", block, re.MULTILINE)
    assert re.search(r"^\s+severity: critical$", block, re.MULTILINE)
    description = " ".join(block.split("description: >-", 1)[1].split())
    assert "from the file's mtime" in description and "`cp -p`" in description
    # The gauge it reads never goes below 0, whatever the producer's clock says.
    metrics = Metrics(venues=())
    metrics.snapshot(lambda: snapshot(inbox_files=1, inbox_oldest_age=-30.0))
    scraped = parse(metrics.render().decode())
    assert value(scraped, "execd_inbox_oldest_file_age_seconds") == 0.0


def test_scrape_config_targets_the_default_loopback_endpoint() -> None:
    scrape_config = "\n".join(line for line in (PROMETHEUS / "scrape.yml").read_text()
                              .splitlines() if not line.lstrip().startswith("#"))
    assert re.search(r"^\s+- job_name: execd$", scrape_config, re.MULTILINE)
    assert re.search(r"^\s+scrape_interval: 15s$", scrape_config, re.MULTILINE)
    targets = re.findall(r"targets: \[\"([^\"]+)\"\]", scrape_config)
    assert targets == ["127.0.0.1:9464"]
    assert parse_listen(targets[0]) == ("127.0.0.1", 9464)


def test_drift_is_a_gauge_per_venue_and_asset_and_a_count_of_drift_records() -> None:
    metrics = Metrics(venues=VENUES)
    metrics.drifted()
    metrics.drifted()
    metrics.snapshot(lambda: snapshot(drift={("binance", "BTC"): -0.25,
                                             ("binance", "ETH"): 0.0}))
    text = metrics.render().decode()
    assert 'execd_drift_quantity{asset="BTC",venue="binance"} -0.25' in text
    assert 'execd_drift_quantity{asset="ETH",venue="binance"} 0.0' in text
    assert "execd_drift_records_total 2.0" in text
