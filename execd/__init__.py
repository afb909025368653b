"""execd: an execution daemon that turns order intents into audited outcomes."""

__version__ = "0.1.0"
