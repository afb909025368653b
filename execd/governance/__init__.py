"""Governance of execution plans (seed 003) and the plan ledger."""
