"""The scheduling layer: how a parent order reaches the market in children (issue 16)."""
