"""The messages execd reads, records and passes between its actors.

Three groups, all msgspec Structs:

* **Input** (untrusted, decoded strictly): :class:`OrderIntent` and
  :class:`ClockTick`, told apart by their ``kind`` field.
* **Ledger bodies** (schema version :data:`SCHEMA_VERSION`): what each record of
  the ledger carries, :class:`ExecutionOutcome` first among them.
* **Actor messages**: what flows between the actors. They never leave the process.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated, Any, Literal, final

import msgspec
from msgspec import Meta, Raw, Struct

from execd.model import ids
from execd.model.once_durable import OnceDurable
from execd.model.reasons import Status

SCHEMA_VERSION = 1

Side = Literal["buy", "sell"]
# Seed 001 writes actions in lower case: both spellings are read, and the sentinel
# goes on with the upper-case one (an id is derived from the line as written, so
# "add" and "ADD" lines are different intents).
Action = Literal["ADD", "TRIM", "EXIT", "RECLAIM", "EMERGENCY_EXIT", "HOLD",
                 "add", "trim", "exit", "reclaim", "emergency_exit", "hold"]
SizeOf = Literal["position", "allocation"]
OrderType = Literal["market", "limit"]
Urgency = Literal["low", "medium", "high", "critical"]
Plane = Literal["paper", "live"]

Name = Annotated[str, Meta(min_length=1, max_length=128)]
# Audit text a producer keeps with an intent (seed 001 writes "" for an unknown state).
Note = Annotated[str, Meta(max_length=128)]

# --------------------------------------------------------------------------- input


class Constraints(
    Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True, gc=False
):
    """Execution constraints an intent may carry (README, Input)."""

    max_slippage_bps: Annotated[int, Meta(ge=0, le=10_000)] | None = None
    reduce_only: bool = False
    post_only: bool = False
    max_leverage: Decimal | None = None


class Execution(
    Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True, gc=False
):
    """How an intent reaches the market (README, "Execution algorithms").

    ``algorithm`` is read as any name, so that one execd does not know is the intent's
    refusal (``EXECUTION_ALGORITHM_UNKNOWN``), not a quarantined line; so are the
    numbers, which the sentinel checks and refuses with their reason. Times are in the
    clock's units: the producer's on the logical clock.
    """

    algorithm: Name = "immediate"
    start: int | None = None
    end: int | None = None
    duration: int | None = None
    slices: int | None = None
    interval: int | None = None
    visible: Decimal | None = None
    participation: Decimal | None = None
    time_in_force: Name | None = None
    expire_at: int | None = None


class OrderIntent(
    Struct,
    frozen=True,
    forbid_unknown_fields=True,
    omit_defaults=True,
    tag="intent",
    tag_field="kind",
    gc=False,
    # Keyword-only so that ``venue`` may be left out (a route instead) while it stays the
    # first field: an intent's bytes, and so the ids derived from them, are as before.
    kw_only=True,
):
    """A venue-agnostic request to trade, as written by research (README, Input).

    ``quantity`` is absolute, in the symbol's base unit; or ``size_frac`` says it as a
    fraction of the position or of an allocation (README, "Sizing"), and an EXIT
    without either exits the whole position: the sentinel resolves it, and every intent
    past the sentinel has a quantity (:attr:`absolute`). ``side`` may be left out
    when ``action`` implies it. ``route`` names a route of the config instead of a
    ``venue`` (README, "Routes"): the sentinel gives the intent the venue it goes to.
    Without ``intent_id`` the id is derived from the intent's content, so resending the
    same line is recognised as a duplicate.
    """

    venue: Name = ""  # "" only when left out (a route instead): a line cannot say ""
    symbol: Name
    quantity: Decimal | None = None
    source_run: Name
    intent_id: uuid.UUID | None = None
    side: Side | None = None
    action: Action | None = None
    order_type: OrderType = "market"
    limit_price: Decimal | None = None
    reference_price: Decimal | None = None
    urgency: Urgency = "medium"
    priority: Annotated[int, Meta(ge=0, le=100)] = 50
    plan_id: Name | None = None
    constraints: Constraints | None = None
    reason_codes: tuple[Name, ...] = ()
    context: dict[str, Any] | None = None
    signature: Annotated[str, Meta(pattern="^[0-9a-f]{64}$")] | None = None
    execution: Execution | None = None
    route: Name | None = None
    # Sizing from a fraction (README, "Sizing").
    size_frac: Decimal | None = None
    size_of: SizeOf | None = None
    allocation: Name | None = None
    # Seed 001's audit fields: kept in the ledger with the line, never acted on.
    state: Note | None = None
    prev_state: Note | None = None
    a_final: float | None = None
    e_final: float | None = None
    position_id: Note | None = None
    token_contract: Note | None = None
    token_chain: Note | None = None
    book_id: Note | None = None
    timeframe: Note | None = None
    risk_reason: Note | None = None

    @property
    def absolute(self) -> Decimal:
        """The absolute quantity: every intent the sentinel passes has one."""
        quantity = self.quantity
        if quantity is None:
            raise AssertionError(f"intent {self.intent_id} was not sized")
        return quantity


def normal(intent: OrderIntent) -> OrderIntent:
    """``intent`` with its action in upper case (seed 001 writes lower case), and an
    EMERGENCY_EXIT at critical urgency and priority 100, ahead of everything (seed 001):
    what every check, rule and record after the sentinel's first sees. The sentinel
    applies it to lines as read; so does whatever decodes a line again from the ledger."""
    action = intent.action
    if action is not None and not action.isupper():
        intent = msgspec.structs.replace(intent, action=action.upper())
    if intent.action == "EMERGENCY_EXIT" and (intent.urgency != "critical"
                                              or intent.priority != 100):
        intent = msgspec.structs.replace(intent, urgency="critical", priority=100)
    return intent


# The ledger's range for logical time: a signed 64-bit integer, as every reader of a
# ledger expects. A tick beyond it would stamp every later record with a number
# thousands of digits long and leave no tick after it that is not a regression.
MAX_TIME = 2**63 - 1


@final  # no subclasses: so the type checker knows what is not a tick is an intent
class ClockTick(Struct, frozen=True, forbid_unknown_fields=True, tag="tick", tag_field="kind"):
    """Moves the logical clock to ``time`` (an integer in the producer's unit, 0 .. 2**63-1)."""

    time: Annotated[int, Meta(ge=0, le=MAX_TIME)]


class TargetLeg(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    """One symbol of a target portfolio: exactly one of ``quantity`` (in the base
    unit) and ``weight`` (of the target's ``capital``, at ``price`` or the lakehouse's)."""

    symbol: Name
    quantity: Decimal | None = None
    weight: Decimal | None = None
    price: Decimal | None = None


class DriftOrder(Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    """One symbol of a drift monitor's target orders: the quantity to reach."""

    symbol: Name
    target_quantity: Decimal


class Target(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True,
             tag="target", tag_field="kind", gc=False, kw_only=True):
    """A target portfolio (README, "Targets"): what portfolio ``portfolio_id`` should
    hold at ``venue`` as of ``as_of`` (clock units, rising per portfolio). execd sends
    the difference from what it holds and has in flight, symbol by symbol."""

    portfolio_id: Name
    source_run: Name
    as_of: Annotated[int, Meta(ge=0, le=2**63 - 1)]
    venue: Name
    targets: tuple[TargetLeg, ...]
    capital: Decimal | None = None
    leverage_allowed: bool = False
    urgency: Urgency = "medium"
    priority: Annotated[int, Meta(ge=0, le=100)] = 50
    plan_id: Name | None = None
    execution: Execution | None = None
    route: Name | None = None
    # HMAC-SHA256 of the target's canonical form, as an intent's (README, "Signatures").
    signature: Annotated[str, Meta(pattern="^[0-9a-f]{64}$")] | None = None


class DriftTarget(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True,
                  tag="drift_target", tag_field="kind", gc=False, kw_only=True):
    """A drift monitor's target orders: per symbol, the quantity to reach. Symbols it
    leaves out keep the targets they had (a partial target)."""

    portfolio_id: Name
    source_run: Name
    as_of: Annotated[int, Meta(ge=0, le=2**63 - 1)]
    venue: Name
    orders: tuple[DriftOrder, ...]
    urgency: Urgency = "medium"
    priority: Annotated[int, Meta(ge=0, le=100)] = 50
    signature: Annotated[str, Meta(pattern="^[0-9a-f]{64}$")] | None = None


InputRecord = OrderIntent | ClockTick | Target | DriftTarget

# ------------------------------------------------------------------- ledger bodies


class Source(Struct, frozen=True, array_like=True, gc=False):
    """Where an input came from: file name, 1-based line, byte offset after the line."""

    file: str
    line: int
    end: int


class Fee(Struct, frozen=True, forbid_unknown_fields=True, array_like=True):
    """A fee the venue charged for an order: amount and currency."""

    cost: Decimal
    currency: str


class Sizing(Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True, gc=False):
    """How an intent's quantity was resolved (README, "Sizing"): ``quantity`` =
    ``frac`` x ``base``, where ``basis`` says what ``base`` is: ``position`` (the
    position as it stands once every pending order fills), ``allocation`` (the
    allocation ``allocation``, in the quote currency, over ``price``), or ``exit`` (the
    whole position, ``frac`` 1). ``quantity`` is rounded down to 18 decimal places."""

    basis: Literal["position", "allocation", "exit"]
    frac: Decimal
    base: Decimal
    quantity: Decimal
    allocation: str | None = None
    price: Decimal | None = None


class Plan(Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True, gc=False):
    """What an order became at its venue, after every rule (seed 001's ExecutionPlan).

    ``size`` is the quantity sent, after rounding to the venue's lot; ``price`` the
    limit's (None: a market order); ``time_in_force`` as sent (None: the venue's
    default, GTC for a limit); ``constraints`` what shaped it, in a fixed order
    (README, "The plan of every order"): ``policy:RULE``, ``limit_from_reference``,
    ``lot_rounding``, ``price_tick``, ``post_only``, ``reduce_only``,
    ``leverage_cap``. ``skip_reason``: the reason nothing was sent. The paper plane's plans
    use the same order type and time in force as the live plane's, so the two can be
    compared line by line.
    """

    order_type: OrderType
    size: Decimal
    action: Action | None = None
    time_in_force: str | None = None
    price: Decimal | None = None
    constraints: tuple[str, ...] = ()
    skip_reason: str | None = None
    # The leverage cap the order was checked under (the intent's max_leverage, or the
    # policy rule's when lower): every venue here is spot, so the order itself borrows
    # nothing; the cap bounds the account's gross over equity after it.
    max_leverage: Decimal | None = None


class ExecutionOutcome(
    Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True, gc=False
):
    """The one outcome every intent (and every unreadable input line) gets.

    The first release's fields (execution id, intent id, plane, status, filled quantity,
    logical time, reason) plus what audit needs: the venue and symbol, the detail
    behind a reason, the source line, and the intent exactly as it was received.
    Orders sent to a real venue add the client and venue order ids, the fees, the
    slippage of the average price against the intent's reference price, in bps
    (positive: worse than the reference), and ``sent_quantity``: the order's amount
    after rounding to the venue's lot size, which can be less than
    ``requested_quantity``. Live venues add ``wall_time`` (nanoseconds since the
    epoch) beside ``logical_time``, which stays the intent's own logical time.
    ``fees_complete`` is false when the venue could not say what all of a live
    fill's fees were (its trades could not be read, or did not add up to the fill
    yet): ``fees`` then holds the fees known so far. Left out when true, so
    ledgers without it read the same.

    A scheduled parent order (README, "Execution algorithms") is sent as children,
    each an intent with its own outcome that names its ``parent``; the parent's own
    outcome, when its schedule ends, sums them and says how many there were
    (``children``): it is a summary, never an order, so nothing that counts fills
    counts it.
    """

    execution_id: str
    intent_id: uuid.UUID
    status: Status
    filled_quantity: Decimal
    logical_time: int
    plane: Plane | None = None
    venue: str | None = None
    symbol: str | None = None
    side: Side | None = None
    requested_quantity: Decimal | None = None
    average_price: Decimal | None = None
    reason: str | None = None
    detail: str | None = None
    source: Source | None = None
    intent: Raw | None = None
    client_order_id: str | None = None
    venue_order_id: str | None = None
    fees: tuple[Fee, ...] = ()
    slippage_bps: Decimal | None = None
    sent_quantity: Decimal | None = None
    wall_time: int | None = None
    fees_complete: bool = True
    parent: uuid.UUID | None = None
    children: int | None = None
    # What the order became (README, "The plan of every order"); None on a refusal
    # before any venue rule was asked, on a quarantine, and on a parent's summary.
    plan: Plan | None = None
    # How the quantity was resolved from a fraction (README, "Sizing").
    sizing: Sizing | None = None
    # ``fees`` in the symbol's quote currency: a fee in the base currency at the
    # average price; None when a fee is in a third currency (BNB) or none is known.
    fees_quote: Decimal | None = None


class OrderRecord(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """An order about to be sent to a live venue, durable before the venue is called.

    It names the client order id the venue will know the order by, so that after a
    crash the order can be looked up there before anything else is decided. The
    intent and its source ride along: the outcome that closes this record may be
    written by a later run of the daemon, which has only the ledger to go on.
    ``wall_time`` (nanoseconds since the epoch) is when the record was made, so a
    later run can tell the order's age whatever clock the ledger's times follow.
    """

    intent_id: uuid.UUID
    venue: str
    symbol: str
    side: Side
    client_order_id: str
    type: OrderType
    amount: Decimal
    requested_quantity: Decimal
    intent: Raw
    price: Decimal | None = None
    reference_price: Decimal | None = None
    post_only: bool = False
    reduce_only: bool = False
    source: Source | None = None
    wall_time: int | None = None
    # IOC or FOK (README, "Execution algorithms"); None: the venue's default (GTC).
    time_in_force: str | None = None
    # The parent order whose child this is (README, "Execution algorithms").
    parent: uuid.UUID | None = None
    # The order's plan, which its outcome repeats, by whichever run writes that.
    plan: Plan | None = None
    sizing: Sizing | None = None


# What the venue answered to one send of an order. "not_recorded": the run that may
# have made this send stopped before it recorded an answer (written by the next start).
SendAnswer = Literal["placed", "rejected", "unreachable", "unknown", "exists", "not_recorded"]
# What a lookup by client order id found after an answer that left the order's fate
# open; "pending": a stop cut it short, and the next start looks the order up again.
LookupResult = Literal["found", "absent", "pending"]


class SendAttemptRecord(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """One send of a live order to its venue: every send is auditable (docs/CONTRACT.md).

    Written once the send's answer is known, and, when the answer left the order's
    fate open, once a lookup by client order id has settled it. ``attempt`` counts
    the order's sends across restarts. ``resend``: another send follows this one,
    and is made only once this record is durable, so the ledger always shows every
    send that may have reached the venue. An attempt whose lookup a stop cut short
    (``lookup = "pending"``) gets a second record once the next start has looked.
    """

    intent_id: uuid.UUID
    venue: str
    client_order_id: str
    attempt: int
    answer: SendAnswer
    wall_time: int
    message: str | None = None
    lookup: LookupResult | None = None
    venue_order_id: str | None = None
    venue_status: str | None = None
    resend: bool = False


class CancelRecord(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """execd asked the venue to cancel a resting order, and what the venue answered.

    ``why``: ``order_timeout_ms`` passed, the daemon was stopping, or the order is a
    schedule's child whose schedule ended (``schedule_ended``: halt, reduce, cancel).
    ``answer``: the order's status in the venue's reply, ``accepted`` (the venue took
    the request and its reply said no state, as OKX's and Bybit's do), ``not found`` (it
    had ended on its own), or the error. The order's outcome follows.
    """

    intent_id: uuid.UUID
    venue: str
    client_order_id: str
    why: Literal["order_timeout_ms", "stopping", "schedule_ended"]
    answer: str
    wall_time: int
    venue_order_id: str | None = None


class PovTerms(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """A POV schedule's terms: its window ``[start, end)`` (nothing is sent from
    ``end`` on), the most of an interval's volume one child may take, and the smallest
    child the venue takes, in lots."""

    start: int
    end: int
    participation: Decimal
    smallest: int = 1


Response = Literal["continue", "slow", "passive", "pause", "halt"]


class Slippage(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """A policy's slippage tolerance for a schedule (README, "Execution policies"): the
    most a child's average price (``max_order_bps``) and the parent's so far
    (``max_parent_bps``) may be worse than the arrival price, in basis points, and what
    a breach does: ``continue`` (recorded only), ``slow`` (what is left of the schedule
    lasts ``stretch`` times as long), ``passive`` (the children left are post-only
    limits at the arrival price), ``pause`` (no child until ``execd ctl
    resume-schedule``), ``halt`` (trading to HALTED)."""

    response: Response
    max_order_bps: Annotated[int, Meta(ge=0, le=10_000)] | None = None
    max_parent_bps: Annotated[int, Meta(ge=0, le=10_000)] | None = None
    stretch: Annotated[int, Meta(ge=2, le=100)] | None = None  # slow only; None: 2


class ScheduleRecord(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """A parent order's schedule, durable before its first child is released.

    The slices (clock time due, lots) are a pure function of the intent, the lot and
    the clock (:mod:`execd.schedule.plan`); ``unplanned`` is the part of ``quantity``
    below one lot, which no child can send. ``intent`` is the parent's line as
    received: a later run rebuilds the children from it.
    """

    intent_id: uuid.UUID
    venue: str
    symbol: str
    side: Side
    algorithm: str
    quantity: Decimal
    lot: Decimal
    # [[due, lots], ...] as JSON, made once (schedule.intake.slices_json): a parent of
    # 100 slices holds one small bytes object, not 100 tuples.
    slices: Raw
    intent: Raw
    unplanned: Decimal = Decimal(0)
    merge: bool = True
    source: Source | None = None
    # A POV's terms (its slices are [[end, lots]]: all it may send, by its end); its
    # children are sized as the market's volume comes in (execd.reader.volumes).
    pov: PovTerms | None = None
    # The parent's priority (0-100): of children due at one time, the higher's go first.
    priority: int = 50
    # The execution policy's rule that applied to the parent (README, "Execution
    # policies"), and the execution it gave an intent that named none: the children
    # are the intent's as this says, not as its line (which has none).
    rule: str | None = None
    execution: Execution | None = None
    # The rule's slippage tolerance, kept with the schedule so that a reload never
    # changes what a parent judged before it is held to; and the arrival price it is
    # measured against: the lakehouse's price when the parent was read, else its own.
    slippage: Slippage | None = None
    arrival: Decimal | None = None
    # How the parent's quantity was resolved from a fraction (README, "Sizing").
    sizing: Sizing | None = None
    # The rule's leverage cap where it lowered the parent's own: its children are
    # checked under it, after a restart too (the line as received has the parent's).
    max_leverage: Decimal | None = None


class SlippageRecord(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """A child's fill breached its schedule's slippage tolerance, and the response taken.

    ``bps``: how much worse than ``arrival`` the child's average ``price`` was (positive:
    worse, for its side), ``parent_bps`` the parent's average so far; ``breached`` which
    tolerance (``order``, ``parent``, or ``order,parent``). For ``slow``, ``next_due``
    is when the next slice is due now. Written right after the child's outcome, before
    any later child of the parent.
    """

    intent_id: uuid.UUID
    child: uuid.UUID
    rule: str
    arrival: Decimal
    price: Decimal
    bps: Decimal
    parent_price: Decimal
    parent_bps: Decimal
    breached: str
    response: Response
    next_due: int | None = None


class RouteRecord(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """Where a routed intent went (README, "Routes"): each venue of its route passed over,
    in order, with why (``hops``), and the venue that got it and the symbol it trades
    under there (None: no venue could). ``after``: this is the rest of an order whose
    venue answered that it could not take it (its id), handed to the next venue; then
    ``intent_id`` is the new order's. Written right before the intent's order or outcome.
    """

    intent_id: uuid.UUID
    route: str
    hops: list[tuple[str, str]]
    venue: str | None = None
    symbol: str | None = None
    after: uuid.UUID | None = None
    quantity: Decimal | None = None


class ResumeRecord(Struct, frozen=True, forbid_unknown_fields=True):
    """An operator resumed a schedule its slippage response paused."""

    intent_id: uuid.UUID
    reason: str
    actor: str


class LegRecord(Struct, frozen=True, array_like=True, gc=False):
    """One symbol of a ``target`` record: the quantity to reach, the position (with what
    is in flight) it was compared with, the order's quantity (signed: a sell is
    negative; 0: none) and id, ``sent`` or ``reached``, and the price the order is
    judged at (its reference price: the target's, else the lakehouse's; None: none).
    ``deferred``: a superseded schedule of the symbol still had a live child out, so the
    order (id ``leg``) is computed once that child settles, and its own record says it."""

    symbol: str
    target: Decimal
    position: Decimal
    quantity: Decimal
    leg: uuid.UUID | None
    what: Literal["sent", "reached", "deferred"]
    price: Decimal | None = None


class TargetRecord(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """A target portfolio was read (README, "Targets"): its id (a UUIDv5 of its
    canonical digest, ``sha256``), whose it is, and its ``legs``. ``supersedes``: the
    target it replaced, and ``ended`` the parents of that one's open schedules it ended.
    Its legs' orders follow it: the record holds all a later run needs to send a leg
    a stop cut off (how: ``urgency``, ``priority``, ``plan_id``, ``execution``,
    ``signed``)."""

    target_id: uuid.UUID
    sha256: str
    portfolio_id: str
    source_run: str
    as_of: int
    venue: str
    legs: list[LegRecord]
    partial: bool = False
    capital: Decimal | None = None
    supersedes: uuid.UUID | None = None
    ended: list[uuid.UUID] = []
    urgency: Urgency = "medium"
    priority: int = 50
    plan_id: str | None = None
    execution: Execution | None = None
    source: Source | None = None
    # Its signature was verified (README, "Signatures"): its legs are signed by execd
    # with the same key, so a venue that requires signatures takes them.
    signed: bool = False


class TickRecord(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    """The logical clock moved to ``time``: by a tick line (``source``) or an operator."""

    time: int
    source: Source | None = None
    actor: str | None = None


TradingState = Literal["ACTIVE", "REDUCING", "HALTED"]


class TradingStateRecord(Struct, frozen=True, forbid_unknown_fields=True):
    """An operator changed the trading state (the kill switch)."""

    state: TradingState
    previous: TradingState
    reason: str
    actor: str


class VenueStatusRecord(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """What a live venue's periodic reads found, when it changed (README, "Can it trade
    now"): its status (``fetch_status``: ``ok`` when the exchange offers none), how many
    markets it lists and how many of them are not active, and the symbols whose market
    stopped (``halted``) or started (``resumed``) being active since the last read.
    Written when it arrives (LATE), at the latest logical time the venue had seen;
    decides nothing a replay redoes."""

    venue: str
    status: str
    markets: int
    inactive: int = 0
    halted: tuple[str, ...] = ()
    resumed: tuple[str, ...] = ()
    wall_time: int | None = None


class HoldingsRecord(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """What a live venue says the account holds (README, "What the venue holds"): each
    asset's ``total`` and ``free`` amount from ``fetch_balance`` (assets it holds none of
    left out), read at start-up (``why = "start"``) and every ``holdings_ms`` when it
    changed (``"poll"``). Written when it arrives (LATE). ``quiet``: no order was in
    flight at the venue while it was read, so the Risk Sentinel compared it with the
    ledger's positions (the ``drift`` records after it say what it found)."""

    venue: str
    why: Literal["start", "poll"]
    total: dict[str, Decimal]
    free: dict[str, Decimal]
    quiet: bool = False
    wall_time: int | None = None


class DriftRecord(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """The Risk Sentinel compared one base asset the venue holds with what the ledger
    says execd holds there (README, "What the venue holds"). ``state``: ``baseline``
    (the first comparison with nothing in flight fixed ``baseline``, what the account
    held besides execd's fills), ``drift`` (``venue_quantity`` is outside ``baseline`` +
    [``ledger_low``, ``ledger_high``] by more than ``tolerance``), ``cleared`` (back
    inside). ``action``: what drift does by config (``alert``; ``reduce`` moves trading
    to REDUCING). ``holdings``: the seq of the ``holdings`` record compared."""

    venue: str
    asset: str
    state: Literal["baseline", "drift", "cleared"]
    venue_quantity: Decimal
    ledger_low: Decimal
    ledger_high: Decimal
    baseline: Decimal
    tolerance: Decimal
    action: Literal["alert", "reduce"] = "alert"
    holdings: int | None = None


class SafetySellRecord(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """An operator ordered a Safety Sell; its exit intents follow this record."""

    venue: str
    reason: str
    actor: str
    orders: int
    symbol: str | None = None
    # "venue": the exits sell what the venue holds (the free amounts of the holdings
    # record at seq ``holdings``), not the ledger's positions (left out: "ledger").
    basis: Literal["venue"] | None = None
    holdings: int | None = None


class OverrideRecord(Struct, frozen=True, forbid_unknown_fields=True):
    """A manual override let an intent through regime parity; its outcome follows."""

    intent_id: uuid.UUID
    regime: str
    operator: str
    reason: str


class ContextRecord(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """The lakehouse context that the intents after this record were judged under.

    Written when it differs from the last one: digests and counts of the run
    registry, prices, overrides and plans, the regime, and any file that could not
    be read (``problems``).
    """

    runs: int
    runs_sha256: str | None
    regime: str | None
    prices: int
    prices_sha256: str | None
    overrides: int
    overrides_sha256: str | None
    plans: int
    plans_sha256: str | None
    problems: tuple[str, ...] = ()
    # Volume profiles for VWAP (market/volume_profile.json): symbols and the digest;
    # left out while there is no such file, so older ledgers read the same.
    profiles: int = 0
    profiles_sha256: str | None = None
    # The market's volume per interval for POV (market/volume.json), likewise.
    volumes: int = 0
    volumes_sha256: str | None = None
    # Allocations to size intents from (portfolio/allocations.json), likewise.
    allocations: int = 0
    allocations_sha256: str | None = None


class InputFileRecord(Struct, frozen=True, forbid_unknown_fields=True):
    """An input file was read to its end (or refused whole) and where it goes next."""

    file: str
    size: int
    sha256: str | None  # None: refused without being read (unreadable, or gone)
    lines: int
    disposition: Literal["archive", "reject"] = "archive"


class StartRecord(Struct, frozen=True, forbid_unknown_fields=True):
    """The daemon started (or a replay began) with these planes and this config."""

    version: str
    mode: Literal["run", "replay"]
    clock: Literal["logical", "wall"]
    planes: dict[str, Plane]
    config_sha256: str


class ConfigRecord(Struct, frozen=True, forbid_unknown_fields=True):
    """A reload changed the config; every risk decision after this record used it.

    ``config_sha256`` is the digest of the settings that decide outcomes, as in the
    start record; ``file_sha256`` the digest of the file's bytes; ``changed`` the
    dotted keys that differ from the config in force before, ``values`` their old
    and new values, ``reason`` why the operator reloaded.
    """

    config_sha256: str
    file_sha256: str
    changed: list[str]
    actor: str
    # Why (the operator's --reason, or the signal), and each changed key's
    # [old, new] values (secrets masked).
    reason: str = ""
    values: dict[str, list[Any]] = {}


class CheckpointRecord(Struct, frozen=True, forbid_unknown_fields=True):
    """A snapshot of the fold through record ``through_seq`` was written (README, "Checkpoints").

    ``head_hash`` is that record's hash; ``snapshot`` the file's name in the ledger's
    ``checkpoints/``, ``sha256`` and ``size`` its bytes'. Start-up trusts a snapshot only
    when this record, in the chain right after ``through_seq``, names it with these.
    ``index_through``: the last record the on-disk id index covers (0: none).
    A checkpoint that could not be written still has its record, so that no later seq
    moves (DESIGN §2): ``snapshot``, ``sha256`` and ``size`` are null and ``skipped`` says
    why; start-up never uses one.
    """

    through_seq: int
    head_hash: str
    snapshot: str | None
    sha256: str | None
    size: int | None
    index_through: int = 0
    skipped: str | None = None


class StopRecord(Struct, frozen=True, forbid_unknown_fields=True):
    """The daemon drained and stopped cleanly."""

    reason: str


RecordKind = Literal["start", "stop", "outcome", "tick", "input_file", "context",
                     "trading_state", "safety_sell", "override", "order", "order_attempt",
                     "order_cancel", "config", "checkpoint", "schedule", "slippage",
                     "resume", "route", "venue_status", "holdings", "drift", "target"]

# ----------------------------------------------------------------- actor messages


# Actor messages are not tracked by the cyclic GC (gc=False): they never form cycles,
# and at a few hundred thousand a second tracking them costs more than the work.


# The seq of an entry that has no place in the ingest order: the outcome of a live
# order, which arrives whenever the venue answers (the order record before it
# holds the intent's place). The writer appends such entries as they come.
LATE = -1


class Entry(Struct, gc=False):
    """A finished ledger record waiting for its place: ``seq`` is the ingest order.

    ``seq`` is :data:`LATE` for records that are appended when they arrive. ``then``
    is what to do once the record is durable (:mod:`execd.model.once_durable`); it
    never reaches the ledger, and it must not refer back to this entry.
    """

    seq: int
    kind: RecordKind
    time: int
    body: Struct
    then: OnceDurable | None = None


class IntentIn(Struct, gc=False):
    """An intent that decoded cleanly, on its way from the reader to the sentinel."""

    seq: int
    time: int
    source: Source | None  # None: execd's own (an order handed on along its route)
    intent: OrderIntent
    raw: bytes
    # Set by the sentinel's sizing, which gives ``intent`` its quantity.
    sizing: Sizing | None = None


class Accepted(Struct, gc=False):
    """An intent the sentinel passed, with what it resolved, on its way to a venue.

    ``source`` is None for the exit intents of a Safety Sell, which no file carried.
    """

    seq: int
    time: int
    source: Source | None
    intent: OrderIntent
    raw: bytes
    intent_id: uuid.UUID
    side: Side
    plane: Plane
    # The parent order whose child this is (README, "Execution algorithms").
    parent: uuid.UUID | None = None
    # The execution policy's rule that applied (its name), for the order's plan.
    rule: str | None = None
    sizing: Sizing | None = None


class ContextIn(Struct, gc=False):
    """A newly read lakehouse context, on its way from the reader to the sentinel."""

    seq: int
    time: int
    record: ContextRecord
    context: Any  # execd.reader.context.LakehouseContext (kept out of this module's imports)


class Settled(Struct, gc=False):
    """A live order's outcome is durable: the sentinel releases what it held pending."""

    venue: str
    symbol: str
    side: Side
    status: Status
    reason: str | None
    reserved: Decimal
    filled: Decimal
    price: Decimal | None
    time: int
    # The order's intent and what it filled (``filled`` is what the account holds after
    # fees): a schedule's child moves its parent on by them.
    intent_id: uuid.UUID | None = None
    executed: Decimal | None = None


class HoldingsIn(Struct, gc=False):
    """A live venue's ``holdings`` record is durable (at ``seq``): the sentinel keeps it
    (a Safety Sell of what the venue holds) and, when it was read while no order was in
    flight there and none started since (``compare``), compares it with the ledger."""

    record: HoldingsRecord
    seq: int
    compare: bool = False
    # A later read found the same holdings (no record written): when (ns, wall clock).
    # What a Safety Sell of them judges their age by.
    read: int | None = None


# A batch is a plain list: batching is what keeps the per-message stream cost off
# the per-intent budget.
class TargetIn(Struct, gc=False):
    """A target portfolio (or a drift monitor's target orders) that decoded cleanly,
    on its way from the reader to the sentinel."""

    seq: int
    time: int
    source: Source
    target: Target | DriftTarget
    raw: bytes


ReaderItem = IntentIn | Entry | ContextIn | TargetIn
RouterItem = Accepted | Entry

_encoder = msgspec.json.Encoder(decimal_format="string")


def encode(value: Any) -> bytes:
    """The canonical JSON encoding used for ledger bodies and derived ids."""
    return _encoder.encode(value)


def quarantine(seq: int, time: int, source: Source, reason: str, detail: str) -> Entry:
    """The outcome of an input line that could not be read as an intent."""
    intent_id = ids.quarantine_id(source.file, source.line)
    outcome = ExecutionOutcome(
        execution_id=ids.execution_id(intent_id, "", "none"),
        intent_id=intent_id,
        status="QUARANTINED",
        filled_quantity=Decimal(0),
        logical_time=time,
        reason=reason,
        detail=detail,
        source=source,
    )
    return Entry(seq, "outcome", time, outcome)
