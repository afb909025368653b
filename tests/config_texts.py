"""Config files' texts for the config tests, in process and as a process: ``GOOD`` loads,
``LIVE`` adds a live ccxt venue to it."""

from __future__ import annotations

GOOD = """
[daemon]
lakehouse = "var/l"
ledger_dir = "var/g"

[venues.binance]
plane = "paper"
"""

LIVE = GOOD + """
[clock]
kind = 'wall'

[risk]
signatures = 'none'

[venues.x]
plane = 'live'
adapter = 'ccxt'

[venues.x.ccxt]
exchange = 'binance'
credentials_env = 'X'
"""
