"""Execution policies in the real daemon (``execd run`` as a process): a policy file's
change, applied by ``ctl reload`` while a schedule it planned runs, is a ``config``
record naming ``policies.sha256`` that marks where the new rules start; the running
schedule keeps the plan it was given; a bad policy file is refused with its problem line
and changes nothing; and a bad policy file at start-up stops the daemon with exit 2."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from execd.policy import file as policy_file
from tests.helpers import (
    EXECD,
    ROOT,
    control_socket,
    ctl,
    drop,
    intent,
    lines,
    outcomes,
    records,
    started,
    stop,
    verify,
    wait_for,
    write_config,
)

POLICY = """
[rules.default]
[rules.default.algorithms.low]
algorithm = "twap"
duration = 100
slices = 4
"""
# The same rules, with a new default and a rule that allows only limits on alpaca.
CHANGED = POLICY.replace("slices = 4", "slices = 2") + """
[rules.alpaca]
match = { venue = "alpaca" }
order_types = ["limit"]
"""


def _outcome(ledger: Path, n: int) -> dict[str, Any] | None:
    wanted = f"00000000-0000-4000-8000-{n:012d}"
    return next((o for o in outcomes(ledger) if o["intent_id"] == wanted), None)


def test_a_reload_changes_the_rules_from_its_record_on_and_a_bad_file_changes_nothing(
        tmp_path: Path) -> None:
    policy = tmp_path / "policies.toml"
    policy.write_text(POLICY)
    path, process = started(tmp_path, extra=f'[policies]\nfile = "{policy}"\n')
    ledger, inbox = tmp_path / "ledger", tmp_path / "lakehouse" / "inbox"
    try:
        low = {"urgency": "low", "quantity": "1.00", "order_type": "limit",
               "limit_price": "10"}
        drop(inbox, "a.jsonl", lines({"kind": "tick", "time": 0}, intent(1, **low),
                                     {"kind": "tick", "time": 30}))
        wait_for(lambda: len(outcomes(ledger)) == 2)  # the children due at 0 and 25
        first_sha = policy_file.load(policy).sha256
        policy.write_text(CHANGED)
        answer = ctl(path, "reload", "--actor", "ops", "--reason", "new desk rules")
        assert answer.returncode == 0, answer.stderr
        change = [r for r in records(ledger) if r["kind"] == "config"]
        assert len(change) == 1
        assert change[0]["body"]["changed"] == ["policies.sha256"]
        assert change[0]["body"]["values"] == {
            "policies.sha256": [first_sha, policy_file.load(policy).sha256]}
        drop(inbox, "b.jsonl", lines(intent(2, venue="alpaca"), intent(3, **low),
                                     {"kind": "tick", "time": 200}))
        wait_for(lambda: _outcome(ledger, 3) is not None and _outcome(ledger, 1) is not None)
        every = records(ledger)
        config_seq = change[0]["seq"]
        schedules = {r["body"]["intent_id"][-1]: r for r in every if r["kind"] == "schedule"}
        # Planned before the record under the old rules, after it under the new ones.
        assert schedules["1"]["seq"] < config_seq < schedules["3"]["seq"]
        assert schedules["1"]["body"]["execution"]["slices"] == 4
        assert schedules["3"]["body"]["execution"]["slices"] == 2
        first = _outcome(ledger, 1)
        # Its slices due at 50 and 75, both late at 200, go as one child.
        assert first is not None and (first["status"], first["filled_quantity"],
                                      first["children"]) == ("FILLED", "1.00", 3)
        refused = _outcome(ledger, 2)
        assert refused is not None and refused["reason"] == "POLICY_ORDER_TYPE_REFUSED"
        # A bad policy file: refused with its line, and the rules in force stay.
        policy.write_text(CHANGED + "\n[rules.broken\n")
        # (--socket: the client reads no config, which is broken now.)
        answer = ctl(path, "reload", "--actor", "ops", "--reason", "typo",
                     "--socket", str(control_socket(tmp_path)))
        assert answer.returncode == 1
        assert f"{policy}: (syntax): expected valid TOML" in answer.stderr
        drop(inbox, "c.jsonl", lines(intent(4, venue="alpaca"), {"kind": "tick", "time": 300}))
        wait_for(lambda: _outcome(ledger, 4) is not None)
        still = _outcome(ledger, 4)
        assert still is not None and still["reason"] == "POLICY_ORDER_TYPE_REFUSED"
        assert len([r for r in records(ledger) if r["kind"] == "config"]) == 1
    finally:
        assert stop(process) == 0
    verify(ledger)


def test_a_bad_policy_file_stops_start_up_with_its_line_and_exit_2(tmp_path: Path) -> None:
    policy = tmp_path / "policies.toml"
    policy.write_text('[rules.a]\norder_types = ["stop"]\n')
    path = write_config(tmp_path, extra=f'[policies]\nfile = "{policy}"\n')
    result = subprocess.run([*EXECD, "run", "--config", str(path)], capture_output=True,
                            text=True, cwd=ROOT, timeout=60, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(
        f"{policy}: rules.a.order_types: expected an array of one of 'market', 'limit'")
    assert not (tmp_path / "ledger").exists() or not any((tmp_path / "ledger").iterdir())
    missing = write_config(tmp_path / "m", extra='[policies]\nfile = "/nonexistent.toml"\n')
    result = subprocess.run([*EXECD, "config", "check", "--config", str(missing)],
                            capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    assert result.returncode == 2
    assert result.stderr.startswith("/nonexistent.toml: (file): expected")
