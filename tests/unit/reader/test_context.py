"""The lakehouse context loader: every failure is a problem in the record, never a raise.

These drive :class:`execd.reader.context.ContextLoader` directly on real files; the daemon
process with the same files is in test_context_process.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from decimal import Decimal
from pathlib import Path

import pytest

import execd.reader.context
from execd.reader.context import ContextLoader, LakehouseContext
from execd.reader.inbox import Lakehouse

DEEP = "[" * 100_000 + "]" * 100_000
INTENT_A = "00000000-0000-4000-8000-000000000001"
INTENT_B = "00000000-0000-4000-8000-000000000002"


def write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def load(root: Path, max_bytes: int = 1 << 20) -> LakehouseContext:
    """A fresh loader's context, loaded in a thread so that a blocked read fails the test."""
    loader = ContextLoader(Lakehouse(root), None, ("CRISIS",), max_bytes=max_bytes)
    result: list[LakehouseContext] = []
    thread = threading.Thread(target=lambda: result.append(loader.load()), daemon=True)
    thread.start()
    thread.join(timeout=30)
    assert result, "ContextLoader.load blocked"
    return result[0]


def override(intent_id: str, **extra: object) -> str:
    return json.dumps({"intent_id": intent_id, "operator": "ops", "reason": "drill", **extra})


# Per file: its path, deeply nested content, the problem it gives, and what counts then.
NESTED = {
    "runs": ("audit/runs.jsonl",
             f'{{"run_id": "run-1", "meta": {DEEP}}}\n{{"run_id": "run-2"}}\n',
             "runs.jsonl: 1 unreadable line(s), first at line 1"),
    "regime": ("market/regime.json", f'{{"regime": "CALM", "x": {DEEP}}}',
               "regime.json: JSON nested too deep to decode"),
    "prices": ("market/prices.json", f'{{"BTC/USDT": {DEEP}}}',
               "prices.json: Expected `decimal`, got `array` - at `$[...]`"),
    "overrides": ("control/overrides.jsonl",
                  f'{override(INTENT_A)}\n{{"intent_id": {DEEP}}}\n',
                  "overrides.jsonl: 1 unreadable line(s), first at line 2"),
    "profiles": ("market/volume_profile.json", f'{{"BTC/USDT": {DEEP}}}',
                 "volume_profile.json: Expected `object`, got `array` - at `$[...]`"),
}


@pytest.mark.parametrize("which", sorted(NESTED))
def test_deeply_nested_json_is_a_problem_and_fails_closed(tmp_path: Path, which: str) -> None:
    name, text, problem = NESTED[which]
    write(tmp_path, name, text)
    context = load(tmp_path)
    assert context.record.problems == (problem,)
    # The same file gives the same text, from a fresh loader too.
    assert load(tmp_path).record == context.record
    if which == "runs":
        assert context.runs == frozenset({"run-2"})
    elif which == "regime":
        assert context.regime == "CRISIS"
    elif which == "prices":
        assert context.prices == {}
    elif which == "profiles":
        assert context.profiles.unusable("ETH/USDT")  # every VWAP is refused
    else:
        assert list(context.overrides) == [execd.reader.context.uuid.UUID(INTENT_A)]


@pytest.mark.parametrize("name", ["audit/runs.jsonl", "market/regime.json",
                                  "market/prices.json", "control/overrides.jsonl",
                                  "market/volume_profile.json"])
def test_a_fifo_is_a_problem_and_never_blocks(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.parent.mkdir(parents=True)
    os.mkfifo(path)
    context = load(tmp_path)
    assert context.record.problems == (f"{path.name}: expected a regular file, found a FIFO",)
    assert context.runs == frozenset() and context.prices == {} and context.overrides == {}
    assert context.regime == ("CRISIS" if name == "market/regime.json" else None)


def test_a_file_over_max_context_bytes_is_a_problem(tmp_path: Path) -> None:
    write(tmp_path, "market/prices.json", json.dumps({f"S{n}/USDT": "1" for n in range(500)}))
    write(tmp_path, "market/regime.json", '{"regime": "CALM"}')
    size = (tmp_path / "market" / "prices.json").stat().st_size
    context = load(tmp_path, max_bytes=4096)
    assert context.record.problems == (
        f"prices.json: expected a file of at most 4096 bytes, found {size} bytes",)
    assert context.prices == {} and context.regime == "CALM"
    assert len(load(tmp_path, max_bytes=size).prices) == 500


def test_a_bare_cr_inside_a_jsonl_line_is_whitespace_not_a_line_break(tmp_path: Path) -> None:
    write(tmp_path, "audit/runs.jsonl", '{"run_id":\r"run-1"}\r\n{"run_id": "run-2"}\n')
    write(tmp_path, "control/overrides.jsonl",
          override(INTENT_A).replace(", ", ",\r") + "\n")
    context = load(tmp_path)
    assert context.record.problems == ()
    assert context.runs == frozenset({"run-1", "run-2"})
    assert len(context.overrides) == 1


def test_a_path_that_cannot_be_stat_ed_is_a_problem(tmp_path: Path) -> None:
    """audit/ is a file: stat() of audit/runs.jsonl fails with ENOTDIR."""
    write(tmp_path, "audit", "not a directory")
    context = load(tmp_path)
    assert context.record.problems == (
        "runs.jsonl: expected a readable file, found Not a directory",)
    assert context.runs == frozenset()


def test_a_fixed_file_is_read_again(tmp_path: Path) -> None:
    loader = ContextLoader(Lakehouse(tmp_path), None, ("CRISIS",))
    path = tmp_path / "market" / "regime.json"
    path.parent.mkdir(parents=True)
    os.mkfifo(path)
    assert loader.load().regime == "CRISIS"
    path.unlink()
    path.write_text('{"regime": "CALM"}')
    fixed = loader.load()
    assert fixed.regime == "CALM" and fixed.record.problems == ()


def test_any_other_failure_while_loading_fails_closed(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A storage fault the loader has no words for still becomes a problem, not a raise."""
    write(tmp_path, "market/regime.json", '{"regime": "CALM"}')
    write(tmp_path, "market/prices.json", '{"BTC/USDT": "100"}')

    def failing(path: Path, max_bytes: int, what: str = "file") -> bytes:
        if Path(path).name == "regime.json":
            raise MemoryError
        return real(path, max_bytes, what)

    real = execd.reader.context.read_regular

    monkeypatch.setattr(execd.reader.context, "read_regular", failing)
    context = load(tmp_path)
    assert context.record.problems == ("regime.json: cannot be loaded (MemoryError)",)
    assert context.regime == "CRISIS"
    assert context.prices == {"BTC/USDT": Decimal("100")}


def test_volume_profiles_are_read_per_symbol_and_an_unusable_one_fails_closed(
        tmp_path: Path) -> None:
    assert not load(tmp_path).profiles.unusable("BTC/USDT")  # no file: every symbol flat
    text = json.dumps({
        "BTC/USDT": {"period": 100, "weights": ["1", "3"]},
        "ETH/USDT": {"period": 100, "weights": ["0", "0"]},
        "SOL/USDT": {"period": 0, "weights": ["1"]},
        "XRP/USDT": {"period": 10, "weights": ["-1", "2"]}})
    path = write(tmp_path, "market/volume_profile.json", text)
    context = load(tmp_path)
    profiles = context.profiles
    assert profiles.profiles["BTC/USDT"].weights == (Decimal(1), Decimal(3))
    assert [s for s in ("BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT", "ADA/USDT")
            if profiles.unusable(s)] == ["ETH/USDT", "SOL/USDT", "XRP/USDT"]
    assert context.record.problems == (
        "volume_profile.json: no usable profile for ETH/USDT, SOL/USDT, XRP/USDT (period > 0; "
        "1 to 10000 weights, each at least 0, not all 0)",)
    assert context.record.profiles == 1
    assert context.record.profiles_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    # Numbers are read exactly, as in prices.json; a wrong shape refuses the whole file.
    write(tmp_path, "market/volume_profile.json", '{"BTC/USDT": {"period": 1, "weights": [0.1]}}')
    assert load(tmp_path).profiles.profiles["BTC/USDT"].weights == (Decimal("0.1"),)
    write(tmp_path, "market/volume_profile.json", '{"BTC/USDT": {"period": 1, "weights": 1}}')
    assert load(tmp_path).profiles.unusable("ADA/USDT")
