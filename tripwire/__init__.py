"""Tripwire core: events, the bus, manifests, paths and the runtime that wires them.

The top-level packages `gateways`, `sensors` and `triggers` hold the kinds; this package
holds what every kind shares and the commands that run them (see DESIGN.md, "Layout and layers").
"""

__version__ = "0.1.0"
