"""Outcome statuses and reason codes.

Every outcome that is not a plain fill carries one of these codes. The README's
table is checked against :data:`REASONS` by a test, so a code cannot be added here
without being documented there.
"""

from __future__ import annotations

from typing import Final, Literal

Status = Literal["FILLED", "PARTIALLY_FILLED", "FAILED", "SKIPPED", "REJECTED", "QUARANTINED"]

STATUSES: Final[dict[str, str]] = {
    "FILLED": "The venue (or the paper plane) filled the whole requested quantity.",
    "PARTIALLY_FILLED": "The venue filled part of the requested quantity.",
    "FAILED": "The venue was asked and the order did not execute.",
    "SKIPPED": "Nothing was sent because there was nothing to do (HOLD, below floor).",
    "REJECTED": "execd refused the intent before any venue saw it.",
    "QUARANTINED": "The input could not be read as an intent; it is kept for inspection.",
}

# Seed 000's closed v1 set, used by venues.
EXECUTION_NOT_AVAILABLE: Final = "EXECUTION_NOT_AVAILABLE"
EXECUTION_REJECTED: Final = "EXECUTION_REJECTED"

# Input that could not be read.
INPUT_MALFORMED_JSON: Final = "INPUT_MALFORMED_JSON"
INPUT_INVALID_UTF8: Final = "INPUT_INVALID_UTF8"
INPUT_SCHEMA_VIOLATION: Final = "INPUT_SCHEMA_VIOLATION"
INPUT_LINE_TOO_LONG: Final = "INPUT_LINE_TOO_LONG"
INPUT_EMPTY_FILE: Final = "INPUT_EMPTY_FILE"
INPUT_CLOCK_REGRESSION: Final = "INPUT_CLOCK_REGRESSION"
INPUT_TICK_UNDER_WALL_CLOCK: Final = "INPUT_TICK_UNDER_WALL_CLOCK"
INPUT_FILE_REPEATED: Final = "INPUT_FILE_REPEATED"

# Intents that were read but are not executable as written.
INTENT_DUPLICATE: Final = "INTENT_DUPLICATE"
INTENT_UNKNOWN_VENUE: Final = "INTENT_UNKNOWN_VENUE"
INTENT_QUANTITY_NOT_POSITIVE: Final = "INTENT_QUANTITY_NOT_POSITIVE"
INTENT_PRICE_NOT_POSITIVE: Final = "INTENT_PRICE_NOT_POSITIVE"
INTENT_LIMIT_PRICE_MISSING: Final = "INTENT_LIMIT_PRICE_MISSING"
INTENT_SIDE_MISSING: Final = "INTENT_SIDE_MISSING"
INTENT_SIDE_CONFLICT: Final = "INTENT_SIDE_CONFLICT"
INTENT_HOLD: Final = "INTENT_HOLD"

REASONS: Final[dict[str, str]] = {
    EXECUTION_NOT_AVAILABLE: "The venue could not be reached or is not available.",
    EXECUTION_REJECTED: "The venue refused the order; the detail carries its message.",
    INPUT_MALFORMED_JSON: "The line is not valid JSON.",
    INPUT_INVALID_UTF8: "The line is not valid UTF-8.",
    INPUT_SCHEMA_VIOLATION: "Valid JSON, but not an intent or tick: unknown field, "
    "missing field, wrong type or value out of range (the detail names the field).",
    INPUT_LINE_TOO_LONG: "The line is longer than input.max_line_bytes.",
    INPUT_EMPTY_FILE: "The input file holds no records at all.",
    INPUT_CLOCK_REGRESSION: "A tick would move the logical clock backwards.",
    INPUT_TICK_UNDER_WALL_CLOCK: "A tick arrived while the daemon runs on the wall clock.",
    INPUT_FILE_REPEATED: "A file arrived under the name of one already consumed; "
    "it is not read (input file names must be unique).",
    INTENT_DUPLICATE: "An intent with this id already has an outcome; no second order.",
    INTENT_UNKNOWN_VENUE: "The intent names a venue that the config does not define.",
    INTENT_QUANTITY_NOT_POSITIVE: "The quantity is zero, negative or not a finite number.",
    INTENT_PRICE_NOT_POSITIVE: "A limit or reference price is zero, negative or not finite.",
    INTENT_LIMIT_PRICE_MISSING: "A limit order without a limit price.",
    INTENT_SIDE_MISSING: "Neither a side nor an action that implies one.",
    INTENT_SIDE_CONFLICT: "The side contradicts the action (for example ADD with sell).",
    INTENT_HOLD: "A HOLD intent: recorded, nothing to execute.",
}
