"""The blocked Bloom filter: an id added is never reported surely new, and its "maybe"
for ids never added stays near the 1% it is sized for, also for ids that are not
random (a filter that said "seen" to every sequential id would send them all to disk)."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from execd.ledger.index.filter import RUN_BITS_PER_ID, BlockedBloom, RunFilter, probe, words_for

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


@settings(max_examples=100)
@given(st.lists(KEYS, max_size=200))
def test_admit_is_add_that_hands_over_its_probe(keys: list[int]) -> None:
    # Same bits as add; its "maybe" carries the hash the runs' filters are asked with.
    bloom, twin = BlockedBloom(50), BlockedBloom(50)
    for key in keys:
        maybe = twin.add(key)
        probed = bloom.admit(key)
        assert (probed is not None) == maybe
        assert probed is None or probed == probe(key)
    assert bloom.to_bytes() == twin.to_bytes() and bloom.count == twin.count


def test_a_run_filter_holds_its_keys_and_about_four_percent_of_others() -> None:
    added = [uuid.uuid5(uuid.NAMESPACE_OID, str(n)).int for n in range(50_000)]
    run_filter = RunFilter(words_for(len(added), RUN_BITS_PER_ID))
    for key in added:
        run_filter.add(key)
    assert all(run_filter.may_hold(*probe(key)) for key in added)
    probes = [uuid.uuid5(uuid.NAMESPACE_URL, str(n)).int for n in range(50_000)]
    assert sum(run_filter.may_hold(*probe(key)) for key in probes) / len(probes) < 0.06
    again = RunFilter(run_filter.words, run_filter.to_bytes())
    assert all(again.may_hold(*probe(key)) for key in added)
