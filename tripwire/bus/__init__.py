"""Buses: the durable event transport between gateways and sensors (embedded, JetStream)."""
