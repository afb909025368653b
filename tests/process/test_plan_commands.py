"""``execd plan`` and ``execd season`` as an operator runs them, on a real plan ledger."""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from execd.governance.plan_ledger import PlanLedger
from execd.governance.plans import plan_id
from tests.helpers import EXECD, ROOT


def execd(ledger: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EXECD, *args, "--ledger", str(ledger)], capture_output=True,
                          text=True, cwd=ROOT, timeout=60, check=False)


def test_a_plan_goes_from_draft_to_committed_with_an_audited_trail(tmp_path: Path) -> None:
    ledger = tmp_path / "plans"
    made = execd(ledger, "plan", "create", "--season", "Q4", "--risk-profile", "base",
                 "--item", "b", "--item", "a", "--reason", "new book", "--actor", "alice")
    assert made.returncode == 0, made.stderr
    plan = plan_id("Q4", "base", ["a", "b"])
    assert made.stdout.startswith(f"{plan} DRAFT season=Q4")
    for action in ("review", "approve", "commit"):
        moved = execd(ledger, "plan", action, plan, "--reason", f"{action} ok", "--actor", "bob")
        assert moved.returncode == 0, moved.stderr
    shown = json.loads(execd(ledger, "plan", "show", plan).stdout)
    assert shown["plan"]["state"] == "COMMITTED"
    assert [(e["action"], e["actor"], e["reason"]) for e in shown["events"]] == [
        ("CREATE", "alice", "new book"), ("REVIEW", "bob", "review ok"),
        ("APPROVE", "bob", "approve ok"), ("COMMIT", "bob", "commit ok")]
    assert execd(ledger, "ledger", "verify").stdout.startswith("ok: 4 records")
    snapshot = json.loads((ledger / "snapshots" / "Q4.json").read_text())
    assert snapshot["plans"][0]["state"] == "COMMITTED" and len(snapshot["events"]) == 4
    # The snapshot is derived: rebuilding it from the events gives the same bytes.
    before = (ledger / "snapshots" / "Q4.json").read_bytes()
    ledger_api = PlanLedger(ledger)
    assert ledger_api.write_snapshot(ledger_api.load(), "Q4").read_bytes() == before


def test_refusals_exit_1_with_the_reason_and_record_nothing(tmp_path: Path) -> None:
    ledger = tmp_path / "plans"
    execd(ledger, "plan", "create", "--season", "Q4", "--risk-profile", "base", "--item", "a",
          "--reason", "r", "--actor", "a")
    plan = plan_id("Q4", "base", ["a"])
    early = execd(ledger, "plan", "commit", plan, "--reason", "r", "--actor", "a")
    assert early.returncode == 1
    assert early.stderr.strip() == f"refused: COMMIT needs a APPROVED plan; plan {plan} is DRAFT"
    assert execd(ledger, "season", "freeze", "Q4", "--reason", "qe", "--actor", "risk") \
        .stdout.strip() == "season Q4 frozen by risk"
    frozen = execd(ledger, "plan", "review", plan, "--reason", "r", "--actor", "a")
    assert frozen.returncode == 1 and "season 'Q4' is frozen" in frozen.stderr
    blank = execd(ledger, "plan", "cancel", plan, "--reason", " ", "--actor", "a")
    assert blank.returncode == 1 and "reason is required" in blank.stderr
    missing = execd(ledger, "plan", "cancel", plan, "--actor", "a")
    assert missing.returncode == 2 and "--reason" in missing.stderr
    assert execd(ledger, "ledger", "verify").stdout.startswith("ok: 2 records")


def test_concurrent_operators_never_share_a_sequence_number(tmp_path: Path) -> None:
    ledger = tmp_path / "plans"
    execd(ledger, "plan", "create", "--season", "Q4", "--risk-profile", "base", "--item", "a",
          "--reason", "r", "--actor", "a")
    plan = plan_id("Q4", "base", ["a"])

    def cancel(n: int) -> int:
        return execd(ledger, "plan", "cancel", plan, "--reason", f"r{n}", "--actor",
                     f"op{n}").returncode

    with ThreadPoolExecutor(4) as pool:
        codes = sorted(pool.map(cancel, range(4)))
    assert codes == [0, 1, 1, 1], "exactly one cancel wins; the others see CANCELLED"
    shown = json.loads(execd(ledger, "plan", "show", plan).stdout)
    assert [e["sequence_no"] for e in shown["events"]] == [1, 2]
