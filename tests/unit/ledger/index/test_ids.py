"""IdIndex answers exactly what a Python set of every id answers, whatever runs were
written, attached, compacted and reopened in between: an id seen before is never
admitted again (a second order), and a new id is never refused, even when the filter
says "maybe" (a false positive must cost a lookup, never an intent)."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from execd.ledger.index import filter
from execd.ledger.index.filter import BlockedBloom
from execd.ledger.index.ids import IdIndex, every_id_maybe
from execd.ledger.index.store import IndexStore

# A small pool, so that repeats are common; ids as the sentinel gets them.
IDS = st.integers(min_value=0, max_value=400).map(
    lambda n: uuid.UUID(int=(n * 0x9E3779B97F4A7C15F39CC0605CEDC835) % (1 << 128)))
STEPS = st.lists(st.one_of(
    st.tuples(st.just("add"), IDS),
    st.tuples(st.just("checkpoint"), st.floats(min_value=0, max_value=1)),
    st.tuples(st.just("compact"), st.just(0)),
    st.tuples(st.just("reopen"), st.just(0)),
    st.tuples(st.just("reopen"), st.just(1)),  # the filter comes later (the shadow's)
    st.tuples(st.just("save"), st.just(0)),
    st.tuples(st.just("fill"), st.just(0)),
), max_size=120)


class _Daemon:
    """A sentinel's IdIndex and a checkpointer writing runs of the ids it has durably
    folded: the ids decided up to some point, never the ones decided after it."""

    def __init__(self, directory: Path, capacity: int | None) -> None:
        self.directory = directory
        self.capacity = capacity
        self.store = IndexStore.create(directory)
        self.index = IdIndex(capacity=capacity)
        self.decided: list[int] = []  # ids admitted and not yet in a run, in order
        self.seq = 0

    def checkpoint(self, share: float) -> None:
        # The durable fold has reached some prefix of what the sentinel decided.
        cut = int(len(self.decided) * share)
        durable, self.decided = self.decided[:cut], self.decided[cut:]
        self.seq += 1
        run = self.store.write_run(sorted(k.to_bytes(16) for k in durable), self.seq)
        self.index.attach(run, durable)
        assert set(self.index.recent) == set(self.decided)

    def compact(self) -> None:
        done = self.store.compact(factor=2, base=4)
        if done is not None:
            self.index.replace(done)

    def reopen(self, late: bool = False) -> None:
        # A restart: what was not in a run is re-added by the fold of the ledger's tail.
        # From the saved filter when there is one: the runs after it are behind it.
        # ``late``: as the checkpointer's shadow, a filter that says "maybe" to every id
        # until the real one is taken, after the tail's ids were added.
        self.index.close()
        self.store.close()
        self.store = IndexStore.open(self.directory)
        saved = self.store.load_filter()
        if saved is None:
            bloom = BlockedBloom(self.capacity or 1 << 10)
            for run in self.store.open_runs():
                bloom.update(run.keys())
                run.close()
            saved = (bloom, None)
        first = every_id_maybe() if late else saved[0]
        self.index = IdIndex(self.store.open_runs(), bloom=first, bloom_through=saved[1])
        for key in self.decided:
            assert self.index.add(uuid.UUID(int=key))
        if late:
            self.index.take_filter(saved[0])

    def save(self) -> None:
        # As app/id_runs.py: the runs behind the filter go in before it is saved.
        if self.index.behind:
            self.index.fill()
        self.store.save_filter(filter.pack(self.index.bloom, self.seq))


@settings(max_examples=150, deadline=None)
@given(STEPS, st.sampled_from([None, 8]))
def test_the_index_answers_as_a_set_of_every_id(steps: list[tuple[str, object]],
                                                 capacity: int | None) -> None:
    seen: set[uuid.UUID] = set()
    with tempfile.TemporaryDirectory() as work:
        daemon = _Daemon(Path(work) / "index", capacity)
        for step, arg in steps:
            if step == "add":
                assert isinstance(arg, uuid.UUID)
                new = arg not in seen
                assert daemon.index.add(arg) == new
                if new:
                    seen.add(arg)
                    daemon.decided.append(arg.int)
            elif step == "checkpoint":
                assert isinstance(arg, float)
                daemon.checkpoint(arg)
            elif step == "compact":
                daemon.compact()
            elif step == "save":
                daemon.save()
            elif step == "fill":
                daemon.index.fill()
            else:
                daemon.reopen(late=arg == 1)
            assert len(daemon.index) == len(seen)
        assert all(key in daemon.index for key in seen)
        daemon.index.close()
        daemon.store.close()


def test_false_positives_still_admit_new_ids() -> None:
    index = IdIndex(capacity=8)  # two words: after a few ids nearly every bit is set
    ids = [uuid.uuid5(uuid.NAMESPACE_OID, str(n)) for n in range(2000)]
    assert all(index.add(intent_id) for intent_id in ids)
    assert index.false_positives > 1000
    assert not any(index.add(intent_id) for intent_id in ids)
    assert len(index) == 2000


def test_an_id_only_the_run_holds_is_refused_after_attach(tmp_path: Path) -> None:
    # The checkpointer's fold may hold ids this index never added (they were folded
    # from the ledger elsewhere): once attached, they are duplicates here too.
    store = IndexStore.create(tmp_path)
    index = IdIndex()
    mine, theirs = uuid.UUID(int=5), uuid.UUID(int=7)
    assert index.add(mine)
    run = store.write_run([mine.bytes, theirs.bytes], 3)
    index.attach(run, [mine.int, theirs.int])
    assert index.recent == set()
    assert not index.add(theirs)
    assert not index.add(mine)
    assert len(index) == 2
    index.close()
    store.close()


def test_growing_the_filter_keeps_every_answer(tmp_path: Path) -> None:
    store = IndexStore.create(tmp_path)
    index = IdIndex(capacity=100)
    ids = [uuid.uuid5(uuid.NAMESPACE_DNS, str(n)) for n in range(300)]
    for intent_id in ids[:200]:
        index.add(intent_id)
    index.attach(store.write_run(sorted(i.bytes for i in ids[:150]), 1),
                 [i.int for i in ids[:150]])
    assert index.full
    before = index.filter_bytes
    index.grow()
    assert index.filter_bytes > before and not index.full
    assert [index.add(i) for i in ids] == [False] * 200 + [True] * 100
    index.close()
    store.close()


def test_a_saved_filter_with_its_runs_answers_as_the_index_did(tmp_path: Path) -> None:
    store = IndexStore.create(tmp_path)
    index = IdIndex(capacity=1000)
    ids = [uuid.uuid5(uuid.NAMESPACE_URL, str(n)) for n in range(600)]
    for intent_id in ids[:400]:
        index.add(intent_id)
    index.attach(store.write_run(sorted(i.bytes for i in ids[:400]), 8),
                 [i.int for i in ids[:400]])
    saved = index.bloom.to_bytes()
    index.close()
    again = IdIndex(store.open_runs(), bloom=BlockedBloom(1000, data=saved))
    assert [again.add(i) for i in ids] == [False] * 400 + [True] * 200
    again.close()
    store.close()


def test_runs_after_a_saved_filter_are_asked_until_it_is_filled(tmp_path: Path) -> None:
    # Saved through seq 1; the run through seq 2 came after: it is asked through its own
    # filter, or the saved one would call its ids surely new and admit them a second
    # time; once filled, the filter holds them, and a compaction of a run behind it
    # leaves the merged run behind it too.
    store = IndexStore.create(tmp_path)
    index = IdIndex(capacity=1000)
    ids = [uuid.uuid5(uuid.NAMESPACE_X500, str(n)) for n in range(300)]
    for seq, part in ((1, ids[:100]), (2, ids[100:200])):
        for intent_id in part:
            index.add(intent_id)
        index.attach(store.write_run(sorted(i.bytes for i in part), seq), [i.int for i in part])
        if seq == 1:
            store.save_filter(filter.pack(index.bloom, 1))
    index.close()
    found = store.load_filter()
    assert found is not None
    again = IdIndex(store.open_runs(), bloom=found[0], bloom_through=found[1])
    assert again.behind
    assert [ids[150] in again, ids[250] in again] == [True, False]
    assert [again.add(i) for i in ids] == [False] * 200 + [True] * 100
    again.close()
    more = [uuid.uuid5(uuid.NAMESPACE_X500, f"more {n}") for n in range(100)]
    for seq, part in ((3, more[:50]), (4, more[50:])):
        store.write_run(sorted(i.bytes for i in part), seq).close()
    found = store.load_filter()
    assert found is not None
    again = IdIndex(store.open_runs(), bloom=found[0], bloom_through=found[1])
    done = store.compact(factor=2, base=1 << 10)  # runs 1 and 2: 2 is behind the filter
    assert done is not None
    again.replace(done)
    assert again.behind
    assert not any(again.add(i) for i in [*ids[:200], *more])
    again.fill()
    assert not again.behind
    assert not any(again.add(i) for i in [*ids[:200], *more])
    assert all(again.add(uuid.uuid5(uuid.NAMESPACE_OID, str(n))) for n in range(100))
    again.close()
    store.close()


def test_a_duplicate_of_a_recent_id_is_answered_by_the_recent_set_alone() -> None:
    # It never reaches the filter (its count stays) nor the runs: a set lookup.
    index = IdIndex()
    intent_id = uuid.UUID(int=42)
    assert index.add(intent_id)
    before = index.bloom.count
    assert not index.add(intent_id)
    assert index.bloom.count == before and index.false_positives == 0
