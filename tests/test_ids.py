import uuid

from hypothesis import given
from hypothesis import strategies as st

from execd import ids


@given(st.text())
def test_uuid5_matches_the_standard_library(name: str) -> None:
    assert ids.uuid5(ids.EXECUTION_NS, name) == str(uuid.uuid5(ids.EXECUTION_NS, name))


def test_ids_are_stable_and_distinct() -> None:
    a = ids.execution_id("i-1", "binance", "paper")
    assert a == ids.execution_id("i-1", "binance", "paper")
    assert a != ids.execution_id("i-1", "binance", "live")
    assert ids.quarantine_id("f.jsonl", 3) != ids.quarantine_id("f.jsonl", 4)
