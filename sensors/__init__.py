"""Sensors: dependencies, filters, conditions and the runtime that fires triggers."""
