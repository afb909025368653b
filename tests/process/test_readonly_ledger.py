"""Ledger and plan reads run by root leave the ledger exactly as they found it.

An operator runs ``execd ledger verify``, ``ledger tail`` and ``plan list/show`` as root
on the daemon's directories, which belong to the user execd. A file root creates there
(a lock, a directory) would be root's, and the daemon could no longer open it. So each
command runs as a real process, as root, on directories chowned to another uid, and:

- a full stat snapshot (uid, gid, mode, mtime_ns, size, and the set of names) of every
  path is the same before and after;
- an audit hook in the process (``sys.addaudithook``: every ``open`` with its flags,
  every chmod, chown, rename, remove, mkdir, utime, truncate, link) shows each file
  under them opened O_RDONLY, without O_CREAT, O_TRUNC or O_APPEND, and nothing else
  done to them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import EXECD, ROOT
from tests.ledgers import build

OWNER = 4242  # not root, and no user on the machine needs to have it

# The process: an audit hook that writes what touched the file system to argv[1], then
# the real command line, execd.cli.main.main, on the rest of argv.
AUDITED = r"""
import json, os, sys
log = open(sys.argv[1], "w", buffering=1)
CHANGES = {"os.chmod", "os.chown", "os.rename", "os.replace", "os.remove", "os.rmdir",
           "os.mkdir", "os.utime", "os.truncate", "os.link", "os.symlink", "shutil.rmtree",
           "os.chflags", "os.setxattr", "os.removexattr"}
def hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        log.write(json.dumps(["open", os.fsdecode(args[0]), args[2]]) + "\n")
    elif event in CHANGES:
        paths = [os.fsdecode(a) for a in args if isinstance(a, (str, bytes, os.PathLike))]
        log.write(json.dumps([event, *paths]) + "\n")
sys.addaudithook(hook)
from execd.cli.main import main
sys.exit(main(sys.argv[2:]))
"""

Snapshot = dict[str, tuple[int, int, int, int, int]]


def snapshot(top: Path) -> Snapshot:
    """Every path under ``top`` (itself included): uid, gid, mode, mtime_ns, size."""
    entries: Snapshot = {}
    for path in [top, *sorted(top.rglob("*"))]:
        st = path.lstat()
        entries[str(path.relative_to(top))] = (st.st_uid, st.st_gid, st.st_mode,
                                               st.st_mtime_ns, st.st_size)
    return entries


def audited(tmp_path: Path, *argv: str, env: dict[str, str] | None = None,
            ) -> tuple[subprocess.CompletedProcess[str], list[Any]]:
    """Run ``execd ARGV`` as a process under the audit hook; its result and its events."""
    events = tmp_path / "events.jsonl"
    done = subprocess.run([sys.executable, "-c", AUDITED, str(events), *argv],
                          capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
                          env=env)
    return done, [json.loads(line) for line in events.read_text().splitlines()]


def touched(events: list[Any], tops: list[Path]) -> list[Any]:
    """The events that opened a file under ``tops`` other than read-only, or changed one."""
    inside = [str(top.resolve()) for top in tops]

    def under(path: str) -> bool:
        full = os.path.realpath(path)
        return any(full == top or full.startswith(top + os.sep) for top in inside)

    bad = []
    for event in events:
        if event[0] == "open":
            _, path, flags = event
            writes = os.O_CREAT | os.O_TRUNC | os.O_APPEND
            if under(path) and ((flags & os.O_ACCMODE) != os.O_RDONLY or flags & writes):
                bad.append(event)
        elif any(under(path) for path in event[1:]):
            bad.append(event)
    return bad


@pytest.fixture
def ledgers(tmp_path: Path) -> tuple[Path, Path, str]:
    """An execution ledger (with its head witness) and a plan ledger, owned by OWNER."""
    if os.geteuid() != 0:
        pytest.skip("needs root: the point is what root's commands do to execd's files")
    from execd.governance.plan_ledger import PlanLedger
    from execd.governance.plans import plan_id
    from execd.ledger import head

    ledger, plans = tmp_path / "ledger", tmp_path / "governance"
    ledger.mkdir()
    lines = build(ledger, 5)
    last = json.loads(lines[-1])
    head.write(ledger, head.Head(last["seq"], last["hash"]))
    with PlanLedger(plans).change() as (gov, append):
        append(gov.create("Q4", ["a"], "base", reason="r", actor="alice",
                          now_utc="2026-01-01T00:00:00Z", snapshot_ref="UNKNOWN"))
    for top in (ledger, plans):
        for path in [top, *top.rglob("*")]:
            os.chown(path, OWNER, OWNER, follow_symlinks=False)
        os.chmod(top, 0o700)
    return ledger, plans, plan_id("Q4", "base", ["a"])


@pytest.mark.parametrize("command", [
    ["ledger", "verify", "--ledger", "{ledger}"],
    ["ledger", "verify", "--ledger", "{ledger}", "--expect", "{head}"],
    ["ledger", "tail", "--ledger", "{ledger}", "-n", "0"],
    ["ledger", "tail", "--ledger", "{ledger}", "--json", "--kind", "stop"],
    ["ledger", "verify", "--ledger", "{plans}"],
    ["plan", "list", "--ledger", "{plans}"],
    ["plan", "show", "{plan}", "--ledger", "{plans}"],
], ids=lambda c: " ".join(c[:2] + [a for a in c[2:] if a.startswith("-")]))
def test_reads_as_root_change_nothing_and_open_read_only(
        tmp_path: Path, ledgers: tuple[Path, Path, str], command: list[str]) -> None:
    ledger, plans, plan = ledgers
    witness = json.loads((ledger / "head.json").read_text())
    argv = [a.format(ledger=ledger, plans=plans, plan=plan,
                     head=f"{witness['seq']}:{witness['hash']}") for a in command]
    before = {top: snapshot(top) for top in (ledger, plans)}
    done, events = audited(tmp_path, *argv)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip(), "the command read something"
    assert {top: snapshot(top) for top in (ledger, plans)} == before
    assert any(e[0] == "open" and e[1].startswith(str(argv[argv.index("--ledger") + 1]))
               for e in events), "the audit hook saw the reads"
    assert touched(events, [ledger, plans]) == []


def test_plan_list_on_a_missing_plan_ledger_creates_nothing(
        tmp_path: Path, ledgers: tuple[Path, Path, str]) -> None:
    missing = tmp_path / "no-governance-yet"
    done, events = audited(tmp_path, "plan", "list", "--ledger", str(missing))
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert not missing.exists()
    assert touched(events, [missing]) == []


@pytest.mark.parametrize("command", [["ledger", "verify"], ["ledger", "tail"], ["plan", "list"]],
                         ids=" ".join)
def test_as_the_operator_types_them_with_the_installed_config(
        tmp_path: Path, ledgers: tuple[Path, Path, str], command: list[str]) -> None:
    """No --config, no --ledger: the installed config (EXECD_ETC stands in for /etc/execd)
    names the daemon's directories, and reading them as root still changes nothing."""
    ledger, plans, _ = ledgers
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "execd.toml").write_text(
        f'[daemon]\nlakehouse = "{tmp_path / "lake"}"\nledger_dir = "{ledger}"\n'
        f'[governance]\nledger_dir = "{plans}"\n[venues.binance]\nplane = "paper"\n')
    env = {k: v for k, v in os.environ.items() if k != "EXECD_CONFIG"}
    before = {top: snapshot(top) for top in (ledger, plans)}
    done, events = audited(tmp_path, *command, env={**env, "EXECD_ETC": str(etc)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
    assert {top: snapshot(top) for top in (ledger, plans)} == before
    assert touched(events, [ledger, plans]) == []


@pytest.mark.parametrize("kind", ["a FIFO", "a symlink", "a directory"])
@pytest.mark.parametrize("command", [["plan", "list"], ["plan", "show", "x"]], ids=" ".join)
def test_a_lock_file_that_is_not_a_regular_file_is_refused_not_waited_on(
        tmp_path: Path, kind: str, command: list[str]) -> None:
    """Opening a FIFO to read waits for a writer: the read-only plan commands open the
    lock without waiting and refuse what is not a regular file, one line, exit 1,
    leaving it as it was."""
    from execd.governance.plan_ledger import PlanLedger

    plans = tmp_path / "governance"
    with PlanLedger(plans).change() as (gov, append):
        append(gov.create("Q4", ["a"], "base", reason="r", actor="alice",
                          now_utc="2026-01-01T00:00:00Z", snapshot_ref="UNKNOWN"))
    lock = plans / ".lock"
    lock.unlink()
    if kind == "a FIFO":
        os.mkfifo(lock)
    elif kind == "a symlink":
        (tmp_path / "elsewhere").write_text("")
        lock.symlink_to(tmp_path / "elsewhere")
    else:
        lock.mkdir()
    before = snapshot(plans)
    done = subprocess.run([*EXECD, *command, "--ledger", str(plans)], capture_output=True,
                          text=True, cwd=ROOT, timeout=30, check=False)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == f"execd: {lock}: expected a regular lock file, found {kind}\n"
    assert snapshot(plans) == before
