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


def uuid5(namespace: uuid.UUID, name: str) -> str:
    """Return the RFC 4122 version-5 UUID of ``name`` under ``namespace`` as text.

    Equal to ``str(uuid.uuid5(namespace, name))``; written out because it sits on
    the per-intent hot path and skips building a UUID object.
    """
    digest = hashlib.sha1(namespace.bytes + name.encode(), usedforsecurity=False).digest()
    value = int.from_bytes(digest[:16], "big")
    # Version 5 in the high nibble of octet 6, RFC 4122 variant in octet 8.
    value = (value & ~(0xF000 << 64)) | (0x5000 << 64)
    value = (value & ~(0xC000 << 48)) | (0x8000 << 48)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def execution_id(intent_id: str, venue: str, plane: str) -> str:
    """The execution id of one intent realised on one venue and plane."""
    return uuid5(EXECUTION_NS, f"{intent_id}|{venue}|{plane}")


def quarantine_id(file: str, line: int) -> str:
    """The intent id given to an input line that could not be read as an intent."""
    return uuid5(QUARANTINE_NS, f"{file}|{line}")


def derived_intent_id(canonical_intent: bytes) -> str:
    """The intent id of an intent that arrived without one: its canonical encoding.

    Two identical lines without ids are therefore the same intent, and the second
    is refused as a duplicate rather than executed twice.
    """
    return uuid5(INTENT_NS, canonical_intent.hex())
