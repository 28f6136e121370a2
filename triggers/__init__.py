"""Triggers: one module per trigger kind, plus template sources and parameters."""
