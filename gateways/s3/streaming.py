"""Streaming an s3 entry's events over HTTP: MinIO's notification stream and SQS long-polls.

Both are long-lived requests that must stay cancellable, so they are plain aiohttp requests
(signed by `s3_connections.Connection`) rather than boto3 calls in threads, and both reconnect
with the entry's backoff. Neither is durable: the stream drops what it sends while we are away
(hence `notify`'s reconciling listing, started by the caller on every subscription), and an SQS
message is deleted only once its records are handled, i.e. durable on the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import orjson
import yarl

from gateways.s3 import connections as s3_connections
from gateways.s3 import records as s3_records
from tripwire import errors

log = logging.getLogger(__name__)

PING = 10  # seconds between MinIO's empty keep-alive records on the stream
READ_TIMEOUT = 3 * PING + 5.0

Handle = Callable[[s3_records.Observed], Awaitable[None]]


def open_session() -> aiohttp.ClientSession:
    """The entry's HTTP session: no overall timeout, but a silent stream is a dead one."""
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=None, connect=10, sock_read=READ_TIMEOUT)
    )


def listen_url(*, endpoint: str, bucket: str, events: list[str], prefix: str, suffix: str) -> str:
    """The ListenBucketNotification URL, encoded exactly as it is signed and sent."""
    query: list[tuple[str, str]] = [("events", name) for name in events]
    query += [("ping", str(PING))]
    if prefix:
        query.append(("prefix", prefix))
    if suffix:
        query.append(("suffix", suffix))
    # SigV4 signs the query exactly as sent: AWS's encoding, sorted, sent as is.
    text = urllib.parse.urlencode(sorted(query), quote_via=urllib.parse.quote)
    return f"{endpoint}/{urllib.parse.quote(bucket)}?{text}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Channel:
    """The HTTP side of one entry: its session, its signed connection, its backoff."""

    session: aiohttp.ClientSession
    conn: s3_connections.Connection
    where: str
    retry_delays: Callable[[], Iterator[float]]
    sleep: Callable[[float], Awaitable[None]]

    # -- notify ---------------------------------------------------------------------------

    async def follow(
        self,
        url: str,
        *,
        first: asyncio.Future[None],
        on_connect: Callable[[], asyncio.Task[None] | None],
        handle: Handle,
    ) -> None:
        """Stream notifications from `url` and `handle` each record, reconnecting for ever.

        `first` resolves on the first subscription, or fails with the first error (then the
        loop ends and the source's `start()` raises, to be retried by the runtime). Every
        subscription calls `on_connect`; a task it returns runs until that connection is given
        up (after the backoff that follows its failure).
        """
        delays = self.retry_delays()
        while True:
            companion: asyncio.Task[None] | None = None
            try:
                async with self.listen(url) as response:
                    delays = self.retry_delays()
                    if not first.done():
                        first.set_result(None)
                    companion = on_connect()
                    await self._read(response, handle)
                log.warning("%s: the notification stream ended; reconnecting", self.where)
            except (aiohttp.ClientError, TimeoutError, OSError, errors.SourceError) as exc:
                reason = str(exc) or type(exc).__name__
                if not first.done():
                    first.set_exception(errors.SourceError(f"{self.where}: {reason}"))
                    return
                delay = next(delays)
                log.warning(
                    "%s: notification stream failed, again in %.1fs: %s", self.where, delay, reason
                )
                await self.sleep(delay)
            finally:
                if companion is not None:
                    companion.cancel()
                    await asyncio.wait([companion])

    @contextlib.asynccontextmanager
    async def listen(self, url: str) -> AsyncIterator[aiohttp.ClientResponse]:
        """One subscription: the response of a freshly signed ListenBucketNotification."""
        headers = await asyncio.to_thread(
            self.conn.signed_headers, method="GET", url=url, service="s3"
        )
        async with self.session.get(
            yarl.URL(url, encoded=True), headers=headers, ssl=self.conn.ssl()
        ) as response:
            if response.status != 200:
                text = (await response.content.read(300)).decode("utf-8", "replace")
                raise errors.SourceError(
                    f"{self.where}: ListenBucketNotification answered HTTP {response.status}:"
                    f" {text}"
                )
            yield response

    async def _read(self, response: aiohttp.ClientResponse, handle: Handle) -> None:
        """Handle each record of the stream; returns when the server closes it."""
        while True:
            line = await response.content.readline()
            if not line:
                return
            line = line.strip()
            if not line:
                continue  # keep-alive
            try:
                message = orjson.loads(line)
            except orjson.JSONDecodeError:
                log.warning("%s: ignoring unreadable notification %r", self.where, line[:200])
                continue
            for record in message.get("Records") or ():
                observed = s3_records.observe(record, encoded=False)
                if observed is not None:
                    await handle(observed)

    # -- sqs ------------------------------------------------------------------------------

    async def sqs(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        """One SQS call (AWS JSON 1.0 protocol), SigV4-signed; cancellable, unlike a thread."""
        url = f"{self.conn.endpoint}/"
        payload = orjson.dumps(body)
        base_headers = {
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": f"AmazonSQS.{action}",
        }
        headers = await asyncio.to_thread(
            self.conn.signed_headers,
            method="POST",
            url=url,
            service="sqs",
            body=payload,
            headers=base_headers,
        )
        async with self.session.post(
            url, data=payload, headers=headers, ssl=self.conn.ssl()
        ) as response:
            raw = await response.read()
            if response.status != 200:
                raise errors.SourceError(
                    f"{self.where}: SQS {action} answered HTTP {response.status}:"
                    f" {raw[:300].decode('utf-8', 'replace')}"
                )
            result: dict[str, Any] = orjson.loads(raw) if raw else {}
            return result

    async def consume(self, queue_url: str, *, handle: Handle) -> None:
        """Long-poll the queue; `handle` each record; delete a message after all its records
        are handled (durable)."""
        delays = self.retry_delays()
        while True:
            try:
                reply = await self.sqs(
                    "ReceiveMessage",
                    {"QueueUrl": queue_url, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 20},
                )
                delays = self.retry_delays()
                done: list[dict[str, str]] = []
                for i, message in enumerate(reply.get("Messages") or ()):
                    records = s3_records.records_of(str(message.get("Body") or ""))
                    if records is None:
                        log.warning(
                            "%s: deleting SQS message %s: not an S3 event notification",
                            self.where,
                            message.get("MessageId"),
                        )
                    for record in records or ():
                        observed = (
                            s3_records.observe(record, encoded=True)
                            if isinstance(record, dict)
                            else None
                        )
                        if observed is not None:
                            await handle(observed)
                    done.append({"Id": str(i), "ReceiptHandle": message["ReceiptHandle"]})
                if done:
                    result = await self.sqs(
                        "DeleteMessageBatch", {"QueueUrl": queue_url, "Entries": done}
                    )
                    for failed in result.get("Failed") or ():
                        log.warning("%s: SQS delete failed: %s", self.where, failed)
            except (aiohttp.ClientError, TimeoutError, OSError, errors.SourceError) as exc:
                delay = next(delays)
                log.warning(
                    "%s: SQS receive failed, again in %.1fs: %s",
                    self.where,
                    delay,
                    exc or type(exc).__name__,
                )
                await self.sleep(delay)


__all__ = ["PING", "READ_TIMEOUT", "Channel", "listen_url", "open_session"]
