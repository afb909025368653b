"""The ledger: append-only, hash-chained JSONL segments; the source of truth."""
