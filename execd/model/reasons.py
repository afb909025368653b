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

# The first release's closed set, used by venues.
EXECUTION_NOT_AVAILABLE: Final = "EXECUTION_NOT_AVAILABLE"
EXECUTION_REJECTED: Final = "EXECUTION_REJECTED"
# Live venues: what became of an order after the venue accepted it, or why none was sent.
EXECUTION_EXPIRED: Final = "EXECUTION_EXPIRED"
EXECUTION_LOT_ROUNDED: Final = "EXECUTION_LOT_ROUNDED"
EXECUTION_NOT_SENT: Final = "EXECUTION_NOT_SENT"
# Live venues: preparing an order from an intent (README, The live plane), before anything is sent.
BELOW_FLOOR: Final = "BELOW_FLOOR"
VENUE_SYMBOL_UNKNOWN: Final = "VENUE_SYMBOL_UNKNOWN"
VENUE_LIMIT_EXCEEDED: Final = "VENUE_LIMIT_EXCEEDED"
VENUE_CONSTRAINT_UNSUPPORTED: Final = "VENUE_CONSTRAINT_UNSUPPORTED"
VENUE_BACKLOG_FULL: Final = "VENUE_BACKLOG_FULL"
# Live venues: the venue cannot trade the symbol now (README, "Can it trade now").
VENUE_MARKET_INACTIVE: Final = "VENUE_MARKET_INACTIVE"
VENUE_MAINTENANCE: Final = "VENUE_MAINTENANCE"

# Input that could not be read.
INPUT_MALFORMED_JSON: Final = "INPUT_MALFORMED_JSON"
INPUT_INVALID_UTF8: Final = "INPUT_INVALID_UTF8"
INPUT_SCHEMA_VIOLATION: Final = "INPUT_SCHEMA_VIOLATION"
INPUT_LINE_TOO_LONG: Final = "INPUT_LINE_TOO_LONG"
INPUT_TOO_DEEP: Final = "INPUT_TOO_DEEP"
INPUT_EMPTY_FILE: Final = "INPUT_EMPTY_FILE"
INPUT_CLOCK_REGRESSION: Final = "INPUT_CLOCK_REGRESSION"
INPUT_TICK_UNDER_WALL_CLOCK: Final = "INPUT_TICK_UNDER_WALL_CLOCK"
INPUT_FILE_REPEATED: Final = "INPUT_FILE_REPEATED"
INPUT_FILE_NAME_INVALID: Final = "INPUT_FILE_NAME_INVALID"
INPUT_FILE_UNREADABLE: Final = "INPUT_FILE_UNREADABLE"
INPUT_FILE_CHANGED: Final = "INPUT_FILE_CHANGED"
# Whole-file outcomes (line 0 of the file): they never move a file's resume point.
FILE_LEVEL: Final = frozenset((INPUT_FILE_REPEATED, INPUT_FILE_NAME_INVALID,
                               INPUT_FILE_UNREADABLE, INPUT_FILE_CHANGED))

# Intents that were read but are not executable as written.
INTENT_DUPLICATE: Final = "INTENT_DUPLICATE"
INTENT_UNKNOWN_VENUE: Final = "INTENT_UNKNOWN_VENUE"
# Routes (README, "Routes"): an intent that names a route instead of a venue.
ROUTE_UNKNOWN: Final = "ROUTE_UNKNOWN"
ROUTE_UNAVAILABLE: Final = "ROUTE_UNAVAILABLE"
INTENT_QUANTITY_NOT_POSITIVE: Final = "INTENT_QUANTITY_NOT_POSITIVE"
INTENT_PRICE_NOT_POSITIVE: Final = "INTENT_PRICE_NOT_POSITIVE"
INTENT_LIMIT_PRICE_MISSING: Final = "INTENT_LIMIT_PRICE_MISSING"
INTENT_SIDE_MISSING: Final = "INTENT_SIDE_MISSING"
INTENT_SIDE_CONFLICT: Final = "INTENT_SIDE_CONFLICT"
INTENT_HOLD: Final = "INTENT_HOLD"
INTENT_NUMBER_OUT_OF_RANGE: Final = "INTENT_NUMBER_OUT_OF_RANGE"
# Targets (README, "Targets"): a target portfolio that cannot be worked.
TARGET_INVALID: Final = "TARGET_INVALID"
TARGET_UNKNOWN_SYMBOL: Final = "TARGET_UNKNOWN_SYMBOL"
TARGET_CAPITAL_INVALID: Final = "TARGET_CAPITAL_INVALID"
TARGET_PRICE_UNKNOWN: Final = "TARGET_PRICE_UNKNOWN"
TARGET_WEIGHTS_EXCEEDED: Final = "TARGET_WEIGHTS_EXCEEDED"
TARGET_STALE: Final = "TARGET_STALE"
TARGET_REPEATED: Final = "TARGET_REPEATED"
TARGET_REACHED: Final = "TARGET_REACHED"
TARGET_SUPERSEDED: Final = "TARGET_SUPERSEDED"
TARGET_SYMBOL_CLAIMED: Final = "TARGET_SYMBOL_CLAIMED"
SCHEDULE_SUPERSEDED: Final = "SCHEDULE_SUPERSEDED"
# Sizing (README, "Sizing"): an intent that gives a fraction instead of a quantity.
SIZE_MISSING: Final = "SIZE_MISSING"
SIZE_CONFLICT: Final = "SIZE_CONFLICT"
SIZE_FRAC_OUT_OF_RANGE: Final = "SIZE_FRAC_OUT_OF_RANGE"
SIZE_ALLOCATION_UNKNOWN: Final = "SIZE_ALLOCATION_UNKNOWN"
SIZE_PRICE_UNKNOWN: Final = "SIZE_PRICE_UNKNOWN"
SIZE_POSITION_UNKNOWN: Final = "SIZE_POSITION_UNKNOWN"
SIZE_ZERO: Final = "SIZE_ZERO"

# Execution algorithms (README, "Execution algorithms"): an intent's `execution` object.
EXECUTION_ALGORITHM_UNKNOWN: Final = "EXECUTION_ALGORITHM_UNKNOWN"
EXECUTION_ALGORITHM_UNSUPPORTED: Final = "EXECUTION_ALGORITHM_UNSUPPORTED"
EXECUTION_WINDOW_INVALID: Final = "EXECUTION_WINDOW_INVALID"
EXECUTION_PARAMETER_INVALID: Final = "EXECUTION_PARAMETER_INVALID"
EXECUTION_TIME_IN_FORCE_INVALID: Final = "EXECUTION_TIME_IN_FORCE_INVALID"
EXECUTION_TIME_IN_FORCE_UNSUPPORTED: Final = "EXECUTION_TIME_IN_FORCE_UNSUPPORTED"
EXECUTION_PROFILE_UNUSABLE: Final = "EXECUTION_PROFILE_UNUSABLE"
EXECUTION_VOLUME_UNUSABLE: Final = "EXECUTION_VOLUME_UNUSABLE"
# The execution policy's rule refused the intent (README, "Execution policies").
POLICY_ORDER_TYPE_REFUSED: Final = "POLICY_ORDER_TYPE_REFUSED"
POLICY_TIME_IN_FORCE_REFUSED: Final = "POLICY_TIME_IN_FORCE_REFUSED"
POLICY_PACING_EXCEEDED: Final = "POLICY_PACING_EXCEEDED"
POLICY_NO_ARRIVAL_PRICE: Final = "POLICY_NO_ARRIVAL_PRICE"
# How a schedule ended short of its quantity (the parent's outcome).
SCHEDULE_HALTED: Final = "SCHEDULE_HALTED"
SCHEDULE_REDUCING: Final = "SCHEDULE_REDUCING"
SCHEDULE_INCOMPLETE: Final = "SCHEDULE_INCOMPLETE"
SCHEDULE_CANCELLED: Final = "SCHEDULE_CANCELLED"

# The Risk Sentinel: trading state, governance, provenance and risk limits.
TRADING_HALTED: Final = "TRADING_HALTED"
TRADING_REDUCING: Final = "TRADING_REDUCING"
GOVERNANCE_PLAN_MISSING: Final = "GOVERNANCE_PLAN_MISSING"
GOVERNANCE_PLAN_UNKNOWN: Final = "GOVERNANCE_PLAN_UNKNOWN"
GOVERNANCE_PLAN_NOT_COMMITTED: Final = "GOVERNANCE_PLAN_NOT_COMMITTED"
PROVENANCE_RUN_UNREGISTERED: Final = "PROVENANCE_RUN_UNREGISTERED"
PROVENANCE_SIGNATURE_MISSING: Final = "PROVENANCE_SIGNATURE_MISSING"
PROVENANCE_SIGNATURE_INVALID: Final = "PROVENANCE_SIGNATURE_INVALID"
RISK_VENUE_COOLDOWN: Final = "RISK_VENUE_COOLDOWN"
RISK_REDUCE_ONLY_VIOLATION: Final = "RISK_REDUCE_ONLY_VIOLATION"
RISK_PRICE_UNKNOWN: Final = "RISK_PRICE_UNKNOWN"
RISK_PRICE_BAND_EXCEEDED: Final = "RISK_PRICE_BAND_EXCEEDED"
RISK_REGIME_OVERRIDE_REQUIRED: Final = "RISK_REGIME_OVERRIDE_REQUIRED"
RISK_NOTIONAL_EXCEEDED: Final = "RISK_NOTIONAL_EXCEEDED"
RISK_ASSET_EXPOSURE_EXCEEDED: Final = "RISK_ASSET_EXPOSURE_EXCEEDED"
RISK_LEVERAGE_EXCEEDED: Final = "RISK_LEVERAGE_EXCEEDED"
RISK_ORDER_RATE_EXCEEDED: Final = "RISK_ORDER_RATE_EXCEEDED"

REASONS: Final[dict[str, str]] = {
    EXECUTION_NOT_AVAILABLE: "The venue could not be reached or is not available.",
    EXECUTION_REJECTED: "The venue refused the order; the detail carries its message.",
    EXECUTION_EXPIRED: "The venue accepted the order but it ended short of its quantity: "
    "expired or cancelled by the venue, or cancelled by execd after order_timeout_ms. "
    "FAILED when nothing filled, PARTIALLY_FILLED otherwise.",
    EXECUTION_LOT_ROUNDED: "PARTIALLY_FILLED: the order filled in full, but rounding the "
    "requested quantity down to the venue's lot size had made it smaller than requested (the "
    "detail names the requested, sent and filled quantities).",
    EXECUTION_NOT_SENT: "The order was recorded but the venue never received it: a lookup by "
    "client order id found no such order after acceptance_window_ms, and it was not sent again "
    "(the default: one send; more only within send_attempts, and at a restart only with "
    "resend_window_ms > 0), or the daemon was stopping before it was sent.",
    BELOW_FLOOR: "SKIPPED: after rounding down to the lot size, the amount or its notional "
    "is below the venue's minimum (the detail has the numbers).",
    VENUE_SYMBOL_UNKNOWN: "The venue's market list does not list the symbol.",
    VENUE_LIMIT_EXCEEDED: "The rounded amount, price or notional is above the venue's maximum "
    "or the price is outside its allowed range.",
    VENUE_CONSTRAINT_UNSUPPORTED: "The intent asks for reduce-only or post-only and the venue "
    "(or the order type) cannot honour it.",
    VENUE_BACKLOG_FULL: "The venue already has max_in_flight orders in flight and backlog "
    "more waiting; the intent is refused rather than delayed (a stalled venue never stalls "
    "the others).",
    VENUE_MARKET_INACTIVE: "SKIPPED: the venue lists the symbol but its market is not "
    "active (halted, delisting: the market rules as last read); nothing was sent.",
    VENUE_MAINTENANCE: "SKIPPED: the venue's status (fetch_status, read every "
    "markets_refresh_ms) is not ok: maintenance, shutdown or an error; nothing was sent.",
    INPUT_MALFORMED_JSON: "The line is not valid JSON.",
    INPUT_INVALID_UTF8: "The line is not valid UTF-8.",
    INPUT_SCHEMA_VIOLATION: "Valid JSON, but not an intent or tick: unknown field, "
    "missing field, wrong type or value out of range (the detail names the field).",
    INPUT_LINE_TOO_LONG: "The line is longer than input.max_line_bytes.",
    INPUT_TOO_DEEP: "The line nests arrays and objects more than 64 levels deep (the line's "
                    "own object is level 1); nothing in it is read.",
    INPUT_EMPTY_FILE: "The input file holds no records at all.",
    INPUT_CLOCK_REGRESSION: "A tick would move the logical clock backwards.",
    INPUT_TICK_UNDER_WALL_CLOCK: "A tick arrived while the daemon runs on the wall clock.",
    INPUT_FILE_REPEATED: "A file arrived under the name of one already consumed; "
    "it is not read (input file names must be unique).",
    INPUT_FILE_NAME_INVALID: "The file's name cannot be recorded: not UTF-8, or longer than "
    "240 bytes. It is not read; it moves to rejected/ under a readable stand-in name that the "
    "outcome gives (NAME.refused-N).",
    INPUT_FILE_UNREADABLE: "The file could not be read: not a regular file (a FIFO, a "
    "directory, a symlink), no permission, or an I/O error. Nothing more of it is read; it "
    "moves to rejected/.",
    INPUT_FILE_CHANGED: "A producer changed the file after execd claimed it: appended to, "
    "truncated or rewritten while or after it was read, or deleted from work/ before it was "
    "read to its end. The detail says what differed; the lines read before were executed, "
    "nothing after that; the file moves to rejected/ for inspection.",
    INTENT_DUPLICATE: "An intent with this id already has an outcome; no second order.",
    INTENT_UNKNOWN_VENUE: "The intent names a venue that the config does not define "
    "(or names neither a venue nor a route).",
    ROUTE_UNKNOWN: "REJECTED: the intent names a route that the config's [routes] does not "
    "define, or names both a venue and a route (one or the other).",
    ROUTE_UNAVAILABLE: "REJECTED: every venue of the intent's route was passed over (not "
    "ready, backlog full, cooling down, or a limit it would breach there); the `route` "
    "record and the detail name each venue and why.",
    INTENT_QUANTITY_NOT_POSITIVE: "The quantity is zero or negative.",
    INTENT_PRICE_NOT_POSITIVE: "A limit or reference price is zero or negative.",
    INTENT_LIMIT_PRICE_MISSING: "A limit order without a limit price.",
    INTENT_SIDE_MISSING: "Neither a side nor an action that implies one.",
    INTENT_SIDE_CONFLICT: "The side contradicts the action (for example ADD with sell).",
    INTENT_HOLD: "A HOLD intent: recorded, nothing to execute.",
    INTENT_NUMBER_OUT_OF_RANGE: "A quantity, price or max_leverage outside 1e-18 .. 1e15.",
    TARGET_INVALID: "REJECTED: a target that cannot be worked as written: a symbol twice, "
    "a symbol with both or neither of quantity and weight, a negative quantity or weight "
    "(every venue here is spot), an unknown venue, or a route (targets name a venue).",
    TARGET_UNKNOWN_SYMBOL: "REJECTED: a target names a symbol its live venue does not list.",
    TARGET_CAPITAL_INVALID: "REJECTED: a target's capital is not a positive decimal, or it "
    "gives weights without a capital.",
    TARGET_PRICE_UNKNOWN: "REJECTED: a weight with no price to turn it into a quantity (no "
    "price in the target, none in market/prices.json).",
    TARGET_WEIGHTS_EXCEEDED: "REJECTED: a target's weights add up (in absolute value) to "
    "more than 1 without leverage_allowed.",
    TARGET_STALE: "REJECTED: a target whose as_of is not later than the portfolio's last "
    "target's.",
    TARGET_REPEATED: "SKIPPED: the same target (the same canonical content) again: "
    "nothing is sent.",
    TARGET_REACHED: "SKIPPED: a target's deferred order (its symbol's superseded schedule "
    "still had a live child out) has nothing left to do once that child settled.",
    TARGET_SUPERSEDED: "SKIPPED: a target's deferred order, never sent, replaced by a "
    "newer target's order for the symbol (deferred too while the same child is out).",
    TARGET_SYMBOL_CLAIMED: "REJECTED: a target names a symbol at a venue that another "
    "portfolio's targets own (the position there is one, and one portfolio's).",
    SCHEDULE_SUPERSEDED: "A parent order made for a target whose portfolio got a newer "
    "target: its schedule ended, its remaining children were not sent (a live child out "
    "is cancelled), and the newer target's orders were computed from what filled.",
    SIZE_MISSING: "REJECTED: neither a quantity nor a size_frac (only EXIT and "
    "EMERGENCY_EXIT may leave both out: they exit the whole position).",
    SIZE_CONFLICT: "REJECTED: a quantity and a size_frac (or size_of, allocation) both "
    "given, or an allocation with size_of = position.",
    SIZE_FRAC_OUT_OF_RANGE: "REJECTED: size_frac is not above 0 and at most 1.",
    SIZE_ALLOCATION_UNKNOWN: "REJECTED: a size_frac of an allocation that [allocations] "
    "does not define (by its name, or book:BOOK_ID).",
    SIZE_PRICE_UNKNOWN: "REJECTED: a size_frac of an allocation with no price to turn "
    "its notional into a quantity (no lakehouse price, reference_price or limit_price).",
    SIZE_POSITION_UNKNOWN: "REJECTED: a size_frac of the position (or an EXIT without a "
    "quantity) for an intent that names a route: whose position is unknown.",
    SIZE_ZERO: "SKIPPED: the fraction resolved to nothing: no position to trim, exit or "
    "add to, or less than 1e-18.",
    EXECUTION_ALGORITHM_UNKNOWN: "REJECTED: execution.algorithm is not one execd knows "
    "(immediate, twap, vwap, iceberg, pov).",
    EXECUTION_ALGORITHM_UNSUPPORTED: "REJECTED: the algorithm cannot run here: a live venue "
    "without market rules (the stub adapter) has no lot size to plan a schedule by.",
    EXECUTION_WINDOW_INVALID: "REJECTED: the schedule's window cannot be planned: it ends "
    "before it starts or before the intent's time, has no end (neither end nor duration, or "
    "both), no slices (neither slices nor interval, or both), 0 slices, or more than 10,000.",
    EXECUTION_PARAMETER_INVALID: "REJECTED: a parameter of the algorithm is missing, out of "
    "range (visible within 1e-18 .. 1e15, at most 10,000 iceberg children, participation "
    "within 1e-18 .. 1 of at most 24 digits), or belongs to "
    "another algorithm; or the quantity has more than 24 significant digits (a schedule "
    "splits it exactly).",
    EXECUTION_TIME_IN_FORCE_INVALID: "REJECTED: time_in_force is not GTC, IOC, FOK, GTD or "
    "PO, GTD comes without expire_at (or expire_at without GTD), or expire_at has passed.",
    EXECUTION_TIME_IN_FORCE_UNSUPPORTED: "REJECTED: the venue cannot honour the intent's "
    "time in force: one its exchange does not list, FOK or PO on a market order, or GTD "
    "(ccxt passes no good-till-date); nothing is sent.",
    EXECUTION_PROFILE_UNUSABLE: "REJECTED: a VWAP's symbol has a volume profile in "
    "market/volume_profile.json that cannot be used, or the file cannot be read, or the "
    "profile weighs every slice of the window 0: it is not planned on a guess.",
    EXECUTION_VOLUME_UNUSABLE: "REJECTED: a POV's symbol is not listed in "
    "market/volume.json, or its intervals there cannot be used, or the file cannot be "
    "read: its children could not be sized by the market's volume.",
    POLICY_ORDER_TYPE_REFUSED: "REJECTED: the execution policy's rule for the intent does "
    "not allow the type of order it becomes (its `order_types`); the detail names the rule.",
    POLICY_TIME_IN_FORCE_REFUSED: "REJECTED: the execution policy's rule for the intent does "
    "not allow the time in force it would be sent with (its `times_in_force`; a limit order "
    "that names none is GTC, a post-only one PO).",
    POLICY_PACING_EXCEEDED: "REJECTED: the intent's schedule is outside the rule's `pacing`: "
    "a POV's participation above max_participation, a window shorter than min_duration or "
    "longer than max_duration, or a child's notional above max_child_notional (or no price "
    "to value it by); the detail has the numbers.",
    POLICY_NO_ARRIVAL_PRICE: "REJECTED: the rule for the intent holds its schedule to a "
    "slippage tolerance, and there is no arrival price to measure it against (no lakehouse "
    "price for the symbol, no limit or reference price).",
    SCHEDULE_HALTED: "A parent order's schedule ended because trading was HALTED: no child "
    "after the halt (PARTIALLY_FILLED or FAILED by what filled; SKIPPED when no child was sent).",
    SCHEDULE_REDUCING: "A parent order's schedule ended because trading became REDUCING and "
    "the parent adds to (or opens) its position.",
    SCHEDULE_CANCELLED: "A parent order's schedule was ended by `execd ctl cancel --intent "
    "ID`; the detail names who and why.",
    SCHEDULE_INCOMPLETE: "A parent order's last slice was sent and its children left part of "
    "the quantity unfilled (they were refused, or filled short); the detail has the numbers.",
    TRADING_HALTED: "Trading is HALTED (`execd ctl halt`): nothing but Safety Sell executes.",
    TRADING_REDUCING: "Trading is REDUCING (`execd ctl reduce`) and the intent would not "
    "only shrink a position.",
    GOVERNANCE_PLAN_MISSING: "Governance requires a plan (governance.require_plan) and the "
    "intent names none.",
    GOVERNANCE_PLAN_UNKNOWN: "The intent names a plan that the plan ledger does not hold.",
    GOVERNANCE_PLAN_NOT_COMMITTED: "The intent's plan exists but is not COMMITTED.",
    PROVENANCE_RUN_UNREGISTERED: "The intent's source_run is not in the lakehouse's audit "
    "registry (audit/runs.jsonl).",
    PROVENANCE_SIGNATURE_MISSING: "The venue's plane requires a signed intent or target "
    "(risk.signatures) and it has no signature.",
    PROVENANCE_SIGNATURE_INVALID: "The signature does not match the intent or target under "
    "the configured key (altered, or signed with another key).",
    RISK_VENUE_COOLDOWN: "The venue failed failure_limit orders within failure_window and "
    "is cooling down.",
    RISK_REDUCE_ONLY_VIOLATION: "constraints.reduce_only is set and the order could grow "
    "the position.",
    RISK_PRICE_UNKNOWN: "A limit needs a price and there is none: no reference_price, no "
    "lakehouse price (and, for notional, no limit_price).",
    RISK_PRICE_BAND_EXCEEDED: "The limit price is further from the reference price than "
    "price_band_bps.",
    RISK_REGIME_OVERRIDE_REQUIRED: "The regime is a crisis regime and the intent adds to a "
    "long at high or critical urgency without an override record naming it.",
    RISK_NOTIONAL_EXCEEDED: "quantity x price is above max_order_notional.",
    RISK_ASSET_EXPOSURE_EXCEEDED: "The worst-case position in the symbol, at its price, "
    "would be above max_asset_exposure.",
    RISK_LEVERAGE_EXCEEDED: "The venue's worst-case gross exposure over equity would be "
    "above max_leverage (or the intent's own constraints.max_leverage).",
    RISK_ORDER_RATE_EXCEEDED: "The venue already took max_orders orders within rate_window.",
}
