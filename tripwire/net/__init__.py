"""Clients of other servers: the HTTP client of the trigger hot path and the Kubernetes API.

Kinds use these instead of opening their own connections, so connection pools, rate limits,
TLS settings and credentials are shared by every gateway and trigger of a process.
"""
