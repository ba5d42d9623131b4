"""One router module per concern; each exposes ``router``."""
