"""The test house's rules, applied to every test: which tests start processes, and no others do.

Everything under ``tests/process/`` starts real daemon processes or other subprocesses
(``execd run``, ``execd ctl``, ``systemd-analyze`` ...) and is marked ``process`` here, so a
file there needs no marker of its own and ``pytest -m "not process"`` (``make test-fast``)
is an inner loop of in-process tests only. Every other test is held to that: starting a
process outside ``tests/process/`` fails the test with the reason, so a new test cannot put
a subprocess in the inner loop without being moved there.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any, NoReturn

import pytest

PROCESS_TESTS = Path(__file__).resolve().parent / "process"

# Every way a test could start another program: subprocess (and asyncio's and anyio's
# process calls, which go through it), and the os module's own.
_SPAWNS = ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system", "spawnv", "spawnve")


def starts_processes(path: Path) -> bool:
    """Whether the test file at ``path`` belongs to the tests that start processes."""
    return path.resolve().is_relative_to(PROCESS_TESTS)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under tests/process/ ``process``, and no other."""
    for item in items:
        if starts_processes(item.path):
            item.add_marker(pytest.mark.process)


def _refuse(what: str) -> Any:
    def refused(*args: Any, **kwargs: Any) -> NoReturn:
        raise AssertionError(f"{what}: a test that starts a process belongs in tests/process/ "
                             "(marked process), not in the in-process tests")
    return refused


@pytest.fixture(autouse=True)
def _no_process_outside_tests_process(
        request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside tests/process/, starting a program fails the test instead of running it."""
    if not starts_processes(request.node.path):
        monkeypatch.setattr(subprocess.Popen, "_execute_child",
                            _refuse("subprocess.Popen"))
        for name in _SPAWNS:
            if hasattr(os, name):
                monkeypatch.setattr(os, name, _refuse(f"os.{name}"))
