import copy
import hashlib
import uuid

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from execd.model import ids


@given(st.binary())
def test_uuid5_is_rfc4122_version_5(name: bytes) -> None:
    digest = hashlib.sha1(ids.EXECUTION_NS.bytes + name).digest()[:16]  # noqa: S324 - UUIDv5 is defined on SHA-1 (RFC 9562)
    expected = uuid.UUID(bytes=digest, version=5)
    assert ids.uuid5(ids.EXECUTION_NS, name) == str(expected)


@given(st.text())
def test_uuid5_of_text_matches_the_standard_library(name: str) -> None:
    assert ids.uuid5(ids.PLAN_NS, name.encode()) == str(uuid.uuid5(ids.PLAN_NS, name))


def test_ids_are_stable_and_distinct() -> None:
    intent = uuid.UUID("00000000-0000-4000-8000-000000000001")
    a = ids.execution_id(intent, "binance", "paper")
    assert a == ids.execution_id(intent, "binance", "paper") == ids.ExecutionIds(
        "binance", "paper")(intent)
    assert a != ids.execution_id(intent, "binance", "live")
    assert ids.quarantine_id("f.jsonl", 3) != ids.quarantine_id("f.jsonl", 4)
    assert ids.derived_intent_id(b"{}") == ids.derived_intent_id(b"{}")


@given(st.uuids(), st.integers(0, 10**6), st.integers(0, 9))
def test_a_child_id_is_the_uuid5_of_its_parent_slice_and_attempt(
        parent: uuid.UUID, slice_: int, attempt: int) -> None:
    name = parent.bytes + f"|{slice_}|{attempt}".encode()
    digest = hashlib.sha1(ids.CHILD_NS.bytes + name).digest()  # noqa: S324 - UUIDv5 is SHA-1
    made = ids.child_intent_id(parent, slice_, attempt)
    standard = uuid.UUID(bytes=digest[:16], version=5)
    assert made == standard and hash(made) == hash(standard) and str(made) == str(standard)
    assert (made.version, made.variant, made.is_safe) == (5, uuid.RFC_4122, standard.is_safe)
    assert msgspec.json.encode(made) == msgspec.json.encode(standard)
    assert copy.deepcopy(made) == standard
