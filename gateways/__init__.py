"""Gateways: one module per source kind that turns the outside world into events."""
