"""The lakehouse's files derived from the ledger (README, "The audit files")."""
