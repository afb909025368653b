"""What every room shares: messages and records, reasons, ids, the clock, errors."""
