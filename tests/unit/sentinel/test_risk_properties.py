"""Property test of the Risk Sentinel's synchronous core (Hypothesis, stateful).

Any sequence of intents, fills, partial fills and failures, on a venue that fills
at once (paper) and on one whose outcomes arrive later: the worst-case exposure
never passes a cap, and a refused intent neither reaches a venue nor moves a
position.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from tempfile import mkdtemp
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from execd.config import schema as config
from execd.model.messages import Accepted, Entry, ExecutionOutcome, Side
from execd.sentinel.core import SeenIds, SentinelCore
from execd.sentinel.risk import Risk
from tests.helpers import write_config
from tests.sentinel_inputs import ctx, item

PRICES = {"A/USD": Decimal(10), "B/USD": Decimal(25)}
MAX_ASSET = Decimal(1000)
# Leverage binds before two full assets do (gross 1500 < 2 x 1000).
EQUITY, MAX_LEVERAGE = Decimal(1000), Decimal("1.5")
LIMITS = ('[risk.limits]\nmax_asset_exposure = "1000"\nmax_leverage = "1.5"\nequity = "1000"\n'
          'max_order_notional = "600"\n')

# Round sizes land exactly on the caps often; arbitrary ones probe in between.
quantities = st.one_of(
    st.sampled_from([Decimal(n) for n in (1, 4, 10, 20, 24, 40, 60)]),
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal(120), places=2))


class RiskMachine(RuleBasedStateMachine):
    """Drives one sentinel core; checks the caps after every step."""

    @initialize()
    def start(self) -> None:
        loaded = config.load(write_config(Path(mkdtemp(prefix="risk-prop-")), extra=LIMITS))
        self.risk = Risk(loaded.config)
        self.risk.set_context(ctx(prices={k: str(v) for k, v in PRICES.items()}))
        # The stub venue stands in for one whose outcomes come back later (the live plane).
        self.risk.venues["stubfail"].settlement = "async"
        self.core = SentinelCore(loaded.config.planes(), SeenIds(), self.risk)
        self.pending: list[tuple[str, Side, Decimal]] = []
        self.n = 0

    def _snapshot(self) -> Any:
        return [(v.venue, v.symbol, v.position, v.pending_buy, v.pending_sell)
                for v in self.risk.book.open_positions()]

    @rule(venue=st.sampled_from(["binance", "stubfail"]), symbol=st.sampled_from(sorted(PRICES)),
          side=st.sampled_from(["buy", "sell"]), quantity=quantities,
          reduce_only=st.sampled_from([False, False, False, True]))
    def submit(self, venue: str, symbol: str, side: Side, quantity: Decimal,
               reduce_only: bool) -> None:
        self.n += 1
        before = self._snapshot()
        fields: dict[str, Any] = {"venue": venue, "symbol": symbol, "side": side,
                                  "quantity": str(quantity)}
        if reduce_only:
            fields["constraints"] = {"reduce_only": True}
        result = self.core.handle(item(self.n, seq=self.n, **fields))
        if isinstance(result, Accepted):
            if venue == "stubfail":
                self.pending.append((symbol, side, quantity))
            return
        # Refused: an outcome, nothing sent, nothing moved.
        assert isinstance(result, Entry) and isinstance(result.body, ExecutionOutcome)
        assert result.body.status == "REJECTED" and result.body.filled_quantity == 0
        assert self._snapshot() == before

    # A second way in, weighted toward growth: the caps are only tested near them.
    @rule(venue=st.sampled_from(["binance", "stubfail"]), symbol=st.sampled_from(sorted(PRICES)),
          quantity=st.sampled_from([Decimal(n) for n in (1, 4, 10, 20, 24, 40, 60)]))
    def grow(self, venue: str, symbol: str, quantity: Decimal) -> None:
        self.submit(venue, symbol, "buy", quantity, False)

    @precondition(lambda self: bool(self.pending))
    @rule(data=st.data(), share=st.sampled_from([Decimal(0), Decimal("0.5"), Decimal(1)]))
    def outcome(self, data: st.DataObject, share: Decimal) -> None:
        index = data.draw(st.integers(0, len(self.pending) - 1))
        symbol, side, quantity = self.pending.pop(index)
        filled = (quantity * share).quantize(Decimal("0.01"))
        status = "FILLED" if share == 1 else "PARTIALLY_FILLED" if share else "FAILED"
        self.risk.observe("stubfail", symbol, side, status,
                          None if share else "EXECUTION_REJECTED", filled, None, 0, quantity)

    # Mostly ACTIVE: a halted machine refuses everything and explores nothing.
    @rule(state=st.sampled_from(["ACTIVE", "ACTIVE", "ACTIVE", "REDUCING", "HALTED"]))
    def operator(self, state: Any) -> None:
        self.core.set_state(state, "property test", "hypothesis")

    @invariant()
    def exposure_within_caps(self) -> None:
        """No sequence of intents and outcomes ever takes a position's worst-case exposure past
        max_asset_exposure, a venue's gross past max_leverage x equity, or a pending quantity
        below zero."""
        if not hasattr(self, "risk"):
            return
        for name, book in self.risk.book.venues.items():
            gross = Decimal(0)
            for symbol, position in book.positions.items():
                exposure = position.worst() * PRICES[symbol]
                assert exposure <= MAX_ASSET, (name, symbol, exposure)
                gross += exposure
            assert gross == book.gross, (name, gross, book.gross)
            assert gross <= MAX_LEVERAGE * EQUITY, (name, gross)
            for position in book.positions.values():
                assert position.pending_buy >= 0 and position.pending_sell >= 0


RiskMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=60,
                                         deadline=None)
TestRiskProperties = RiskMachine.TestCase
