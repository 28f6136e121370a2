"""The bus contract: durable publish, acknowledged delivery, and durable key-value state.

Gateways never see a bus (they get a `dispatch` callable); sensors consume from it. Every
implementation (embedded SQLite journal, NATS JetStream) passes the same contract suite in
`tests/contract/test_bus.py`:

- `publish(event)` returns only once the event is durable; it raises `BusUnavailableError`
  when it cannot be made durable. A second publish of an event id already in the dedupe window
  is accepted and dropped (JetStream `Nats-Msg-Id` semantics).
- `subscribe(consumer=..., subjects=...)` yields messages of a durable consumer: a message not
  acknowledged before the consumer stops is delivered again when it restarts (at-least-once).
  A consumer seen for the first time starts at the end of the journal. With `handler=`, the
  bus pushes each message to it instead, synchronously, in order, on the event loop: no task
  wakes per message, which is what lets a thousand sensors cost what one does. A handler must
  not block; it schedules its awaits.
- `store(namespace)` is durable key-value state (sensor partial state, trigger journal, gateway
  watermarks); `write()` applies a batch of puts and deletes atomically.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from typing import Protocol

from tripwire import events

DEFAULT_PREFIX = "tripwire"


def subject(*, prefix: str, gateway: str, event: str) -> str:
    """The bus subject of one gateway entry: `<prefix>.<gateway>.<event>`."""
    return f"{prefix}.{gateway}.{event}"


class Message(Protocol):
    """One delivery of an event to one consumer."""

    @property
    def event(self) -> events.Event: ...

    @property
    def seq(self) -> int:
        """Position in the journal/stream; increases with publish order."""
        ...

    @property
    def deliveries(self) -> int:
        """1 on the first delivery, more when redelivered (after a restart or a nak)."""
        ...

    async def ack(self) -> None:
        """The consumer is done with the event; it will not be delivered again."""
        ...

    async def nak(self, *, delay: float = 0.0) -> None:
        """Deliver the event again after `delay` seconds."""
        ...


Handler = Callable[[Message], None]


class Subscription(Protocol):
    def __aiter__(self) -> AsyncIterator[Message]: ...

    async def close(self) -> None:
        """Stop delivering; unacknowledged messages stay pending for the next start."""
        ...


class Store(Protocol):
    """Durable key-value state of one owner (a sensor, a gateway)."""

    async def get(self, key: str) -> bytes | None: ...

    async def scan(self, prefix: str = "") -> list[tuple[str, bytes]]:
        """All entries whose key starts with `prefix`, in key order."""
        ...

    async def write(self, changes: Mapping[str, bytes | None]) -> None:
        """Put (bytes) and delete (None) atomically; durable when this returns."""
        ...


class Bus(Protocol):
    prefix: str

    async def start(self, stack: contextlib.AsyncExitStack) -> None:
        """Open the bus and register its orderly close on `stack`."""
        ...

    async def publish(self, event: events.Event) -> None: ...

    async def subscribe(
        self, *, consumer: str, subjects: Collection[str], handler: Handler | None = None
    ) -> Subscription: ...

    def store(self, namespace: str) -> Store: ...
