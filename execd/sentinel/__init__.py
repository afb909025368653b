"""The Risk Sentinel actor: whether an intent may reach a venue."""
