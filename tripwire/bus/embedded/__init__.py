"""The embedded bus: one process, durable in a SQLite WAL journal, or purely in memory.

`tripwire run` needs a bus that survives a crash of its own process without running a server;
`--ephemeral` needs the same semantics with nothing on disk. Three parts:

- `bus`: `EmbeddedBus` itself, the orchestrator: publish, routing, subscribe, the group commit
  of the journal writer, and in memory the backpressure that bounds a slow consumer;
- `journal`: the SQLite file (schema, connections, the commit of one batch, trimming,
  checkpoints, catch-up pages, saved cursors and acks) and what its durability guarantees;
- `consumers`: each consumer's delivery state (cursor, pending messages, acks, falling behind
  and catching up), touched by every delivery and ack.

Callers use this package as the module it used to be: `embedded.EmbeddedBus`,
`embedded.DURABLE_MAX_PENDING`, `embedded.MEMORY_MAX_PENDING`.
"""

from __future__ import annotations

from tripwire.bus.embedded import bus

EmbeddedBus = bus.EmbeddedBus
DURABLE_MAX_PENDING = bus.DURABLE_MAX_PENDING
MEMORY_MAX_PENDING = bus.MEMORY_MAX_PENDING

__all__ = ["DURABLE_MAX_PENDING", "MEMORY_MAX_PENDING", "EmbeddedBus"]
