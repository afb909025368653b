"""Governance of execution plans (README, Execution plans) and the plan ledger."""
