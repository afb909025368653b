"""The blocked Bloom filter: an id added is never reported surely new, and its "maybe"
for ids never added stays near the 1% it is sized for, also for ids that are not
random (a filter that said "seen" to every sequential id would send them all to disk)."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from execd.ledger.index.filter import BlockedBloom, words_for

KEYS = st.integers(min_value=0, max_value=(1 << 128) - 1)


@settings(max_examples=200)
@given(st.lists(KEYS, max_size=300), st.integers(min_value=1, max_value=500))
def test_an_added_key_is_never_surely_new(keys: list[int], capacity: int) -> None:
    bloom = BlockedBloom(capacity)
    for key in keys:
        bloom.add(key)
    assert all(bloom.may_contain(key) for key in keys)
    assert all(bloom.add(key) for key in keys)  # a second add reports "maybe seen"
    assert bloom.count == 2 * len(keys)


def _false_positive_rate(added: list[int], probes: list[int]) -> float:
    bloom = BlockedBloom(len(added))
    bloom.update(added)
    assert all(bloom.may_contain(key) for key in added)
    return sum(map(bloom.may_contain, probes)) / len(probes)


def test_random_ids_give_about_one_percent_false_positives() -> None:
    added = [uuid.uuid5(uuid.NAMESPACE_OID, str(n)).int for n in range(100_000)]
    probes = [uuid.uuid5(uuid.NAMESPACE_URL, str(n)).int for n in range(50_000)]
    assert _false_positive_rate(added, probes) < 0.02


def test_sequential_ids_are_spread_as_well_as_random_ones() -> None:
    # The shape of ids a producer numbers by hand (bench/paper.py writes these).
    base = uuid.UUID("00000000-0000-4000-8000-000000000000").int
    added = [base + n for n in range(100_000)]
    probes = [base + n for n in range(100_000, 150_000)]
    assert _false_positive_rate(added, probes) < 0.02
    high = [n << 96 for n in range(1, 100_001)]  # ids that differ only in their top bits
    assert _false_positive_rate(high[:50_000], high[50_000:]) < 0.02


def test_a_saved_filter_means_the_same_when_loaded() -> None:
    bloom = BlockedBloom(1000)
    bloom.update(range(0, 1 << 100, 1 << 90))
    again = BlockedBloom(1000, data=bloom.to_bytes())
    probes = range(0, 1 << 101, 1 << 87)
    assert [again.may_contain(k) for k in probes] == [bloom.may_contain(k) for k in probes]
    assert bloom.nbytes == words_for(1000) * 8 == 188 * 8  # 12 bits an id, whole words


def test_a_filter_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(ValueError, match="1504 bytes, found 8"):
        BlockedBloom(1000, data=bytes(8))
