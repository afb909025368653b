"""Deterministic identifiers.

Every id execd makes is a UUIDv5 of stable fields under a fixed namespace, so a
replay of the same inputs produces the same ids and nothing depends on randomness.
"""

from __future__ import annotations

import hashlib
import uuid

# Fixed namespaces. Changing one changes every id derived from it: never do that
# to a deployed ledger.
INTENT_NS = uuid.UUID("6f1d2a52-2b1e-5a57-9d0e-0c3f6f7a1b01")
EXECUTION_NS = uuid.UUID("6f1d2a52-2b1e-5a57-9d0e-0c3f6f7a1b02")
QUARANTINE_NS = uuid.UUID("6f1d2a52-2b1e-5a57-9d0e-0c3f6f7a1b03")
PLAN_NS = uuid.UUID("6f1d2a52-2b1e-5a57-9d0e-0c3f6f7a1b04")
EVENT_NS = uuid.UUID("6f1d2a52-2b1e-5a57-9d0e-0c3f6f7a1b05")
CLIENT_ORDER_NS = uuid.UUID("6f1d2a52-2b1e-5a57-9d0e-0c3f6f7a1b06")
SAFETY_NS = uuid.UUID("6f1d2a52-2b1e-5a57-9d0e-0c3f6f7a1b07")
CHILD_NS = uuid.UUID("6f1d2a52-2b1e-5a57-9d0e-0c3f6f7a1b08")
TARGET_NS = uuid.UUID("6f1d2a52-2b1e-5a57-9d0e-0c3f6f7a1b09")


# RFC 4122 variant bits (10xx) applied to the hex digit at the start of octet 8.
_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def uuid5(namespace: uuid.UUID, name: bytes) -> str:
    """The RFC 4122 version-5 UUID of the byte string ``name`` under ``namespace``, as text.

    Equal to ``str(uuid.UUID(bytes=sha1(ns + name)[:16], version=5))``; formatted by
    hand because it runs once per intent and a UUID object costs more than the hash.
    """
    h = hashlib.sha1(namespace.bytes + name, usedforsecurity=False).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


class ExecutionIds:
    """Execution ids for one venue and plane: UUIDv5 of (intent id bytes | venue | plane)."""

    def __init__(self, venue: str, plane: str) -> None:
        self._suffix = f"|{venue}|{plane}".encode()
        self._prefix = EXECUTION_NS.bytes

    def __call__(self, intent_id: uuid.UUID) -> str:
        """The execution id of ``intent_id`` on this venue and plane."""
        # uuid5() inlined: once per intent on the venue path.
        name = self._prefix + intent_id.int.to_bytes(16, "big") + self._suffix
        h = hashlib.sha1(name, usedforsecurity=False).hexdigest()
        return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


def execution_id(intent_id: uuid.UUID, venue: str, plane: str) -> str:
    """The execution id of one intent realised on one venue and plane."""
    return ExecutionIds(venue, plane)(intent_id)


def quarantine_id(file: str, line: int) -> uuid.UUID:
    """The intent id given to an input line that could not be read as an intent."""
    return uuid.UUID(uuid5(QUARANTINE_NS, f"{file}|{line}".encode()))


_CHILD_PREFIX = CHILD_NS.bytes
# The version (5) and variant (10xx) bits of a UUID held as an int.
_KEEP = ~((0xF << 76) | (0x3 << 62))
_SET = (5 << 76) | (0x2 << 62)


def child_intent_id(parent: uuid.UUID, slice_: int, attempt: int) -> uuid.UUID:
    """The intent id of a schedule's child: its parent's id, the first slice it covers
    and the attempt (execd/schedule/core.py), so a rebuilt schedule asks for the same one.

    ``uuid.uuid5(CHILD_NS, ...)``, made from the digest's integer: once per child, and
    parsing a UUID from its text costs more than the hash."""
    digest = hashlib.sha1(_CHILD_PREFIX + parent.int.to_bytes(16, "big")
                          + b"|%d|%d" % (slice_, attempt), usedforsecurity=False).digest()
    return _uuid((int.from_bytes(digest[:16], "big") & _KEEP) | _SET)


_new, _set, _UNKNOWN = object.__new__, object.__setattr__, uuid.SafeUUID.unknown


def _uuid(value: int) -> uuid.UUID:
    """``uuid.UUID(int=value)`` for a value known to be a valid UUID's, without the
    constructor's argument checks (half its cost): the two slots it sets, as it sets
    them. tests/unit/model/test_ids.py compares the result with the constructor's."""
    made: uuid.UUID = _new(uuid.UUID)
    _set(made, "int", value)
    _set(made, "is_safe", _UNKNOWN)
    return made


def derived_intent_id(canonical_intent: bytes) -> uuid.UUID:
    """The intent id of an intent that arrived without one: its canonical encoding.

    Two identical lines without ids are therefore the same intent, and the second
    is refused as a duplicate rather than executed twice.
    """
    return uuid.UUID(uuid5(INTENT_NS, canonical_intent))


def client_order_id(intent_id: uuid.UUID, venue: str, prefix: str, length: int) -> str:
    """The id a venue knows an intent's order by: ``prefix`` + hex of a UUIDv5, ``length`` long.

    Derived from the intent alone, so the same intent always asks the venue for the
    same order and a lookup after a crash finds it. Hex keeps it inside every
    venue's charset; ``length`` is the venue's limit (at least 16 hex digits remain).
    """
    digest = uuid5(CLIENT_ORDER_NS, intent_id.bytes + venue.encode()).replace("-", "")
    return (prefix + digest)[:length]
