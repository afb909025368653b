"""The shadow loop's files, derived from ledger records (README, "The audit files").

Pure: :class:`Derivation` is fed each durable record in ledger order and gives the
lines to append to ``execution_logs.jsonl`` and ``audit/audit.jsonl``, and the
contents of ``portfolio_actual_state.json`` as of the last record fed. The daemon
feeds it as records become durable; ``execd lakehouse rebuild`` feeds it the whole
ledger: the same records give the same bytes, so the files rebuilt equal those
written live.

* The **actual state**, per venue and symbol: the position (fills, net of fees taken
  in the base asset, as the Risk Sentinel books them), the average cost (weighted on
  increases, kept on reductions, reset when the position flips sign), and the last
  fill; per portfolio with a target, how far the actual position is from it.
* An **execution log** line per fill: quantities, prices, fees and the times the
  records hold: ``read`` (the intent's logical time, on the wall clock only),
  ``sent`` (its order record's wall time), ``accepted`` (the placed send's),
  ``filled_at`` (the outcome's), and the latency from sent to filled.
* An **audit** line per fill: the outcome record's seq and chain hash, keyed by the
  research run the intent came from, so research can prove which fills came from
  which run.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

from execd.venues.ccxt.results import held_change

_ZERO = Decimal(0)
_FILLS = frozenset(("FILLED", "PARTIALLY_FILLED"))
_encode = msgspec.json.Encoder(decimal_format="string").encode


class _Held:
    __slots__ = ("average", "last", "position")

    def __init__(self) -> None:
        self.position = _ZERO
        self.average: Decimal | None = None
        self.last: dict[str, Any] | None = None

    def fill(self, change: Decimal, price: Decimal | None, seq: int, time: int) -> None:
        before = self.position
        after = before + change
        if price is not None:
            if after == 0:
                self.average = None
            elif before == 0 or (before > 0) != (after > 0) or self.average is None:
                self.average = price  # opened, or flipped through zero: this fill's cost
            elif abs(after) > abs(before):  # increased: weighted by size
                self.average = (self.average * abs(before) + price * abs(change)) / abs(after)
            self.last = {"seq": seq, "time": time, "price": str(price)}
        self.position = after


class Derivation:
    """The derived files' state, fed ledger records in order. Bounded by the symbols
    held, the portfolios' targets, the live orders in flight and the legs open."""

    def __init__(self) -> None:
        self.seq = 0
        self.hash = ""
        self.clock = "logical"
        self.held: dict[tuple[str, str], _Held] = {}
        # Live orders without an outcome yet: intent id -> (its order's wall time,
        # the placed send's wall time).
        self.orders: dict[str, list[int | None]] = {}
        self.targets: dict[str, dict[str, Any]] = {}
        # A target's legs without their own outcome yet: leg id -> target id. Only
        # these are a target's fills (an input intent may say anything in its context).
        self.legs: dict[str, str] = {}

    def feed(self, seq: int, kind: str, time: int, body: Any, hash_: str
             ) -> tuple[list[bytes], list[bytes]]:
        """One record (its body decoded to plain JSON values): the lines it adds to the
        execution log and to the audit file."""
        self.seq, self.hash = seq, hash_
        if kind == "start" and isinstance(body, dict):
            self.clock = str(body.get("clock", "logical"))
        elif kind == "order" and isinstance(body, dict):
            self.orders[str(body.get("intent_id"))] = [body.get("wall_time"), None]
        elif kind == "order_attempt" and isinstance(body, dict):
            times = self.orders.get(str(body.get("intent_id")))
            if times is not None and body.get("answer") in ("placed", "exists"):
                times[1] = body.get("wall_time")
        elif kind == "target" and isinstance(body, dict):
            self._target(body)
        elif kind == "outcome" and isinstance(body, dict):
            return self._outcome(seq, time, body, hash_)
        return [], []

    def _target(self, body: dict[str, Any]) -> None:
        portfolio = str(body.get("portfolio_id"))
        before = self.targets.get(portfolio)
        symbols = dict(before["symbols"]) if before and body.get("partial") else {}
        for leg in body.get("legs") or ():
            if isinstance(leg, list) and len(leg) >= 2:
                symbols[str(leg[0])] = str(leg[1])
            if isinstance(leg, list) and len(leg) >= 6 and leg[4] is not None and (
                    leg[5] in ("sent", "deferred")):
                self.legs[str(leg[4])] = str(body.get("target_id"))
        self.targets[portfolio] = {"target_id": body.get("target_id"),
                                   "as_of": body.get("as_of"), "venue": body.get("venue"),
                                   "symbols": symbols}

    def _outcome(self, seq: int, time: int, body: dict[str, Any], hash_: str
                 ) -> tuple[list[bytes], list[bytes]]:
        intent_id = str(body.get("intent_id"))
        times = self.orders.pop(intent_id, None)
        # A leg's own outcome (an order's, or its schedule's summary after its
        # children's) ends it; a child's fill is its parent leg's.
        target_id = self.legs.pop(intent_id, None) or self.legs.get(str(body.get("parent")))
        if body.get("status") not in _FILLS or body.get("children") is not None:
            return [], []
        filled = Decimal(str(body.get("filled_quantity", "0")))
        venue, symbol, side = (str(body.get("venue")), str(body.get("symbol")),
                               str(body.get("side")))
        if not filled or side not in ("buy", "sell"):
            return [], []
        fees = tuple(_fee(f) for f in body.get("fees") or () if isinstance(f, list))
        change = held_change(symbol, side, filled, tuple(f for f in fees if f is not None))
        price = body.get("average_price")
        key = (venue, symbol)
        held = self.held.get(key)
        if held is None:
            held = self.held[key] = _Held()
        held.fill(change if side == "buy" else -change, None if price is None else
                  Decimal(str(price)), seq, time)
        sent, accepted = (times or [None, None])
        filled_at = body.get("wall_time")
        log = {"seq": seq, "intent_id": intent_id, "parent": body.get("parent"),
               "venue": venue, "symbol": symbol, "side": side, "filled": str(filled),
               "average_price": price, "fees": body.get("fees") or [],
               "fees_quote": body.get("fees_quote"), "slippage_bps": body.get("slippage_bps"),
               "read": body.get("logical_time") if self.clock == "wall" else None,
               "sent": sent, "accepted": accepted, "filled_at": filled_at,
               "latency_ms": (filled_at - sent) / 1e6 if isinstance(filled_at, int)
               and isinstance(sent, int) else None}
        raw = body.get("intent")
        intent: dict[str, Any] = raw if isinstance(raw, dict) else {}
        audit = {"source_run": intent.get("source_run"), "seq": seq, "hash": hash_,
                 "intent_id": intent_id, "parent": body.get("parent"),
                 "target_id": target_id, "venue": venue, "symbol": symbol,
                 "side": side, "filled": str(filled)}
        return [_encode(log) + b"\n"], [_encode(audit) + b"\n"]

    def snapshot(self) -> dict[str, Any]:
        """Everything fed so far, as plain JSON values (:meth:`restore` takes it back):
        what a start resumes from instead of feeding the whole ledger again."""
        return {"seq": self.seq, "hash": self.hash, "clock": self.clock,
                "held": [[venue, symbol, str(h.position),
                          None if h.average is None else str(h.average), h.last]
                         for (venue, symbol), h in sorted(self.held.items())],
                "orders": self.orders, "targets": self.targets, "legs": self.legs}

    @classmethod
    def restore(cls, saved: dict[str, Any]) -> Derivation:
        """The derivation :meth:`snapshot` saw. Raises KeyError, TypeError, ValueError or
        ArithmeticError on anything else (the caller then derives from the start)."""
        done = cls()
        done.seq, done.hash, done.clock = int(saved["seq"]), str(saved["hash"]), str(
            saved["clock"])
        for venue, symbol, position, average, last in saved["held"]:
            held = done.held[(str(venue), str(symbol))] = _Held()
            held.position = Decimal(position)
            held.average = None if average is None else Decimal(average)
            held.last = dict(last) if last is not None else None
        done.orders = {str(k): list(v) for k, v in dict(saved["orders"]).items()}
        done.targets = {str(k): dict(v) for k, v in dict(saved["targets"]).items()}
        done.legs = {str(k): str(v) for k, v in dict(saved.get("legs", {})).items()}
        return done

    def state(self) -> bytes:
        """``portfolio_actual_state.json``'s bytes as of the last record fed."""
        venues: dict[str, dict[str, Any]] = {}
        for (venue, symbol), held in sorted(self.held.items()):
            venues.setdefault(venue, {})[symbol] = {
                "position": str(held.position),
                "average_cost": None if held.average is None else str(_short(held.average)),
                "last_fill": held.last}
        portfolios = {}
        for name, target in sorted(self.targets.items()):
            symbols = {}
            for symbol, wanted in sorted(target["symbols"].items()):
                found = self.held.get((str(target["venue"]), symbol))
                actual = found.position if found is not None else _ZERO
                symbols[symbol] = {"target": wanted, "actual": str(actual),
                                   "difference": str(Decimal(wanted) - actual)}
            portfolios[name] = {"target_id": target["target_id"], "as_of": target["as_of"],
                                "venue": target["venue"], "symbols": symbols}
        return _encode({"as_of_seq": self.seq, "as_of_hash": self.hash, "venues": venues,
                        "portfolios": portfolios}) + b"\n"


def _fee(fee: list[Any]) -> Any:
    from execd.model.messages import Fee

    if len(fee) != 2:
        return None
    try:
        return Fee(Decimal(str(fee[0])), str(fee[1]))
    except ArithmeticError:
        return None


def _short(value: Decimal) -> Decimal:
    """An average cost shown to 18 significant digits (it is for people and research)."""
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else (
        +value if len(value.as_tuple().digits) <= 18 else Decimal(f"{value:.18g}"))
