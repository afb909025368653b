"""The risk limits in force for one (venue, symbol), resolved from the config's layers.

A symbol's own limits win over its venue's, which win over ``[risk.limits]``
(README, "Configuration"). Resolved once per (venue, symbol) and per config, so the
checks read plain attributes.
"""

from __future__ import annotations

from decimal import Decimal

from execd.config.schema import SymbolLimits, VenueLimits


class Limits:
    """The limits in force for one (venue, symbol): symbol over venue over ``[risk.limits]``."""

    __slots__ = (
        "any_notional",
        "band",
        "equity",
        "gross_cap",
        "max_asset_exposure",
        "max_leverage",
        "max_order_notional",
        "price_band_bps",
    )

    def __init__(self, layers: list[SymbolLimits]) -> None:
        def first(name: str) -> object:
            for layer in layers:
                value = getattr(layer, name, None)
                if value is not None:
                    return value
            return None

        self.max_order_notional: Decimal | None = first("max_order_notional")  # type: ignore[assignment]
        self.max_asset_exposure: Decimal | None = first("max_asset_exposure")  # type: ignore[assignment]
        self.price_band_bps: int | None = first("price_band_bps")  # type: ignore[assignment]
        self.max_leverage: Decimal | None = first("max_leverage")  # type: ignore[assignment]
        self.equity: Decimal | None = first("equity")  # type: ignore[assignment]
        self.any_notional = (self.max_order_notional is not None
                             or self.max_asset_exposure is not None
                             or self.max_leverage is not None)
        # Precomputed so the hot path multiplies instead of dividing.
        self.band: Decimal | None = (Decimal(self.price_band_bps)
                                     if self.price_band_bps is not None else None)
        self.gross_cap: Decimal | None = (self.max_leverage * self.equity
                                          if self.max_leverage is not None
                                          and self.equity is not None else None)


def merged(top: VenueLimits, venue: VenueLimits) -> VenueLimits:
    """A venue's own limits, with ``[risk.limits]`` wherever the venue sets none."""
    values = {f: getattr(venue, f) if getattr(venue, f) is not None else getattr(top, f)
              for f in VenueLimits.__struct_fields__}
    return VenueLimits(**values)
