"""The triage worker: inbound messages in, routed tickets out, at least once, nothing lost.

One batch at a time: take what is waiting (up to ``batch_max``; never wait to fill a batch),
decode, dead-letter what cannot be read, look the ticket ids up in the store, classify the new
ones off the event loop, record them, publish every ticket with confirms, mark the confirmed
ones published, and only then ack the inbound messages.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractRobustConnection,
)
from aiormq.exceptions import ChannelInvalidStateError, DeliveryError
from pamqp import commands as spec

from triage import sla
from triage.broker import (
    Topology,
    dead_letter,
    declare,
    persistent,
    publish_confirmed,
    queue_arguments,
)
from triage.classify import Model
from triage.config import HEADER_SCHEMA, TICKET_SCHEMA_VERSION, Settings
from triage.metrics import Metrics
from triage.route import Decision, Rules, decide
from triage.schema import InboundMessage, Rejection, decode
from triage.store import Store

log = logging.getLogger("triage.worker")
T = TypeVar("T")


@dataclass
class ModelRef:
    """The model and routing rules in use; replaced as a whole on reload."""

    model: Model
    rules: Rules


@dataclass
class _Pending:
    """One ticket to publish and the inbound deliveries waiting on it."""

    ticket_id: str
    body: bytes
    queue: str
    category: str
    received_at: float
    deliveries: list[AbstractIncomingMessage] = field(default_factory=list)


def ticket_row(message: InboundMessage, decision: Decision, model_version: str,
               received_at: float, routed_at: float) -> tuple[dict[str, Any], bytes]:
    """The store row and the published body (ticket v1, see :class:`Ticket`) of a new ticket."""
    created = message.created_at.timestamp() if message.created_at else None
    start = sla.clock_start(created, received_at)
    respond_by = sla.deadline(start, decision.sla_seconds)
    # orjson writes aware datetimes as isoformat() does, and embeds the message as pydantic
    # serialised it, without a round trip through Python objects.
    body = orjson.dumps({
        "version": TICKET_SCHEMA_VERSION, "ticket_id": message.ticket_id,
        "message": orjson.Fragment(message.model_dump_json()), "category": decision.category,
        "priority": decision.priority, "queue": decision.queue, "review": decision.review,
        "confidence": round(decision.confidence, 4), "reasons": list(decision.reasons),
        "model_version": model_version, "received_at": _utc(received_at),
        "routed_at": _utc(routed_at), "respond_by": _utc(respond_by) if respond_by else None,
    })
    row = {
        "ticket_id": message.ticket_id, "platform": message.platform,
        "message_id": message.id, "category": decision.category, "queue": decision.queue,
        "priority": decision.priority, "review": decision.review,
        "confidence": decision.confidence, "model_version": model_version,
        "sla_seconds": decision.sla_seconds, "sla_start": start, "respond_by": respond_by,
        "received_at": received_at, "routed_at": routed_at, "state": "routed",
        "body": body.decode(),
    }
    return row, body


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


@dataclass
class _Outcome:
    """How each delivery of a batch is to be settled, once earlier batches are."""

    ack: list[AbstractIncomingMessage] = field(default_factory=list)
    requeue: list[AbstractIncomingMessage] = field(default_factory=list)


class Worker:
    """Consumes the inbound queue until :meth:`stop`."""

    def __init__(self, settings: Settings, store: Store, models: ModelRef, metrics: Metrics,
                 *, clock: Callable[[], float] = time.time,
                 executor: Executor | None = None) -> None:
        self.settings = settings
        self.store = store
        self.models = models
        self.metrics = metrics
        self.clock = clock
        self.executor = executor or ThreadPoolExecutor(max_workers=1,
                                                       thread_name_prefix="classify")
        self._buffer: asyncio.Queue[AbstractIncomingMessage | None] = asyncio.Queue()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._consumer_tag: str | None = None
        self.consume_channel: AbstractChannel | None = None
        self.publish_channel: AbstractChannel | None = None
        self.topology: Topology | None = None
        self.handled = 0
        self._store_calls: dict[object, float] = {}  # running store call -> monotonic start

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self, connection: AbstractRobustConnection) -> None:
        """Open channels, declare the topology and start consuming."""
        self.publish_channel = await connection.channel(publisher_confirms=True,
                                                        on_return_raises=True)
        self.topology = await declare(self.publish_channel, self.settings)
        self.consume_channel = await connection.channel()
        await self.consume_channel.set_qos(prefetch_count=self.settings.prefetch)
        # Declared (idempotently), not fetched with get_queue(ensure=False): only a declared
        # queue is registered with the robust channel, which restores its consumer after a
        # reconnect; a fetched one silently stays without a consumer after a broker restart.
        queue = await self.consume_channel.declare_queue(
            self.settings.inbound_queue, durable=True,
            arguments=queue_arguments(self.settings))
        self._consumer_tag = await queue.consume(self._on_message, no_ack=False)
        self._queue = queue
        self.metrics.consumers.labels(self.settings.inbound_queue).set(1)
        self._task = asyncio.create_task(self._loop(), name="triage-batches")
        log.info("consuming %s (prefetch %d, batches up to %d)", self.settings.inbound_queue,
                 self.settings.prefetch, self.settings.batch_max)

    def store_stalled_for(self) -> float:
        """Seconds the oldest running store call has waited (failing, retrying or locked out).

        While it grows nothing is routed: messages wait in the queue, unacked.
        """
        if not self._store_calls:
            return 0.0
        return time.monotonic() - min(self._store_calls.values())

    @property
    def consuming(self) -> bool:
        """True while the consumer is attached on an open channel."""
        channel = self.consume_channel
        return bool(self._consumer_tag and channel is not None and not channel.is_closed
                    and not self._stopping)

    async def stop(self) -> None:
        """Stop consuming, finish and ack in-flight work, close the channels; reject nothing."""
        if self._stopping:
            return
        self._stopping = True
        if self._consumer_tag is not None:
            try:
                await self._queue.cancel(self._consumer_tag)
            except Exception as exc:  # the channel may already be gone
                log.warning("cancelling the consumer failed: %s", type(exc).__name__)
        self.metrics.consumers.labels(self.settings.inbound_queue).set(0)
        await self._buffer.put(None)
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, self.settings.shutdown_grace_seconds)
            except TimeoutError:
                log.warning("in-flight work did not finish within the grace period; "
                            "unacked messages go back to the queue")
                self._task.cancel()
        for channel in (self.consume_channel, self.publish_channel):
            if channel is not None and not channel.is_closed:
                await channel.close()
        log.info("worker stopped after %d messages", self.handled)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        await self._buffer.put(message)

    async def _loop(self) -> None:
        """Take batches off the buffer, ``batches_in_flight`` at most, settled in order.

        While one batch waits for the broker's confirms the next is decoded and classified.
        Each batch settles (acks) only after the one before it has, so one
        ``ack(multiple=True)`` per batch never acks a delivery of an unfinished batch.
        """
        slots = asyncio.Semaphore(self.settings.batches_in_flight)
        previous = asyncio.Event()
        previous.set()
        running: set[asyncio.Task[None]] = set()
        while True:
            first = await self._buffer.get()
            batch = [] if first is None else [first]
            while len(batch) < self.settings.batch_max and not self._buffer.empty():
                item = self._buffer.get_nowait()
                if item is not None:
                    batch.append(item)
            if batch:
                await slots.acquire()
                settled = asyncio.Event()
                task = asyncio.create_task(self._run(batch, previous, settled, slots))
                running.add(task)
                task.add_done_callback(running.discard)
                previous = settled
            if self._stopping and self._buffer.empty():
                if running:
                    await asyncio.gather(*running, return_exceptions=True)
                return

    async def _run(self, batch: list[AbstractIncomingMessage], previous: asyncio.Event,
                   settled: asyncio.Event, slots: asyncio.Semaphore) -> None:
        try:
            try:
                outcome = await self.handle(batch)
            except Exception:
                log.exception("a batch of %d failed; retrying one message at a time",
                              len(batch))
                outcome = await self._one_by_one(batch)
            await previous.wait()
            await _settle_all(outcome)
            self.handled += len(batch)
        finally:
            settled.set()
            slots.release()

    async def _one_by_one(self, batch: list[AbstractIncomingMessage]) -> _Outcome:
        """Retry a failed batch message by message to isolate the one that crashes."""
        outcome = _Outcome()
        for message in batch:
            try:
                single = await self.handle([message])
                outcome.ack += single.ack
                outcome.requeue += single.requeue
            except Exception as exc:
                # Requeued: the broker counts deliveries and dead-letters it at the limit.
                log.error("a message failed processing (%s); requeued", type(exc).__name__)
                outcome.requeue.append(message)
        return outcome

    # --- one batch ----------------------------------------------------------------------

    async def handle(self, batch: Sequence[AbstractIncomingMessage]) -> _Outcome:
        """Process one batch (decode, dedupe, classify, record, publish); say how to settle it.

        Nothing is acked here: the caller settles the batch once earlier batches are settled.
        """
        started = time.perf_counter()
        now = self.clock()
        received = datetime.fromtimestamp(now, UTC)
        self.metrics.batch_size.observe(len(batch))
        self.metrics.last_message.set(now)
        outcome = _Outcome()

        decoded: list[tuple[AbstractIncomingMessage, InboundMessage]] = []
        refused: list[tuple[AbstractIncomingMessage, Rejection]] = []
        received_by: Counter[tuple[str, str]] = Counter()
        for delivery in batch:
            result = decode(delivery.body, max_bytes=self.settings.max_body_bytes,
                            received_at=received)
            if isinstance(result, Rejection):
                refused.append((delivery, result))
                continue
            received_by[(result.platform_label, result.kind)] += 1
            decoded.append((delivery, result))
        for (platform, kind), count in received_by.items():
            self.metrics.messages_received.labels(platform, kind).inc(count)

        # Dead-letter the refused ones while the rest of the batch is routed: awaiting each
        # one's confirm in turn stalled the whole batch once per bad message.
        dead_letters = asyncio.gather(*(self._reject(d, r.reason, r.detail, outcome)
                                        for d, r in refused))
        try:
            await self._route(decoded, received, outcome)
        finally:
            await dead_letters  # _reject never raises: a failed dead letter is requeued
        self.metrics.batch_seconds.labels("total").observe(time.perf_counter() - started)
        return outcome

    async def _route(self, decoded: list[tuple[AbstractIncomingMessage, InboundMessage]],
                     received: datetime, outcome: _Outcome) -> None:
        """Classify, record (deduplicating in the store) and publish one batch's messages.

        Every distinct ticket id is classified, then recorded in one store transaction that
        also says which ids were recorded before: those are not routed again but republished
        from their stored body (recorded, never confirmed) or acked as duplicates (published).
        A redelivery is rare, so classifying it once more costs less than a second round trip
        to the store for every batch.
        """
        started = time.perf_counter()
        pending: dict[str, _Pending] = {}
        messages: dict[str, InboundMessage] = {}
        for delivery, message in decoded:
            tid = message.ticket_id
            if tid in pending:
                pending[tid].deliveries.append(delivery)
                continue
            messages[tid] = message
            pending[tid] = _Pending(tid, b"", "", "", (message.received_at or received)
                                    .timestamp(), [delivery])
        if messages:
            await self._classify_and_record(messages, pending, outcome)
        self.metrics.batch_seconds.labels("prepare").observe(time.perf_counter() - started)
        if pending:
            await self._publish(list(pending.values()), outcome)

    async def _classify_and_record(self, messages: dict[str, InboundMessage],
                                   pending: dict[str, _Pending], outcome: _Outcome) -> None:
        models = self.models  # an in-flight batch finishes on the model it started with
        texts = [m.text for m in messages.values()]
        loop = asyncio.get_running_loop()
        start = time.perf_counter()
        predictions = await loop.run_in_executor(self.executor, models.model.predict, texts)
        self.metrics.batch_seconds.labels("classify").observe(time.perf_counter() - start)
        routed_at = self.clock()
        rows, decisions = [], {}
        for (tid, message), prediction in zip(messages.items(), predictions, strict=True):
            decision = decide(prediction, models.rules)
            item = pending[tid]
            row, body = ticket_row(message, decision, models.model.version, item.received_at,
                                   routed_at)
            item.body, item.queue, item.category = body, decision.queue, decision.category
            rows.append(row)
            decisions[tid] = decision
        existing = await self._retry_store("record", self.store.record_new, rows)
        for tid, stored in existing.items():
            item = pending[tid]
            decisions.pop(tid)
            if stored.published:
                self.metrics.duplicates_suppressed.inc(len(item.deliveries))
                outcome.ack += item.deliveries
                del pending[tid]
                continue
            data = orjson.loads(stored.body)
            item.body, item.queue, item.category = (stored.body.encode(), data["queue"],
                                                    data["category"])
            self.metrics.tickets_republished.inc()
        for decision in decisions.values():
            self.metrics.classifier_confidence.labels(decision.category).observe(
                decision.confidence)
            if decision.review:
                why = "safety_net" if any(r.startswith("safety:") for r in decision.reasons) \
                    else "low_confidence"
                self.metrics.review_routed.labels(why).inc()
            for reason in decision.reasons:
                if reason.startswith("safety:"):
                    self.metrics.safety_net.labels(reason[7:]).inc()

    async def _publish(self, items: list[_Pending], outcome: _Outcome) -> None:
        assert self.topology is not None
        exchange = self.topology.tickets_exchange
        timeout = self.settings.publish_timeout_seconds
        start = time.perf_counter()
        results = await asyncio.gather(*(
            publish_confirmed(exchange, persistent(
                item.body, message_id=item.ticket_id,
                headers={HEADER_SCHEMA: f"ticket/{TICKET_SCHEMA_VERSION}",
                         "category": item.category}), item.queue, timeout)
            for item in items), return_exceptions=True)
        self.metrics.batch_seconds.labels("publish").observe(time.perf_counter() - start)
        confirmed = [item for item, result in zip(items, results, strict=True)
                     if not isinstance(result, BaseException)]
        now = self.clock()
        await self._retry_store("mark_published", self.store.mark_published,
                                [i.ticket_id for i in confirmed], now)
        routed: Counter[tuple[str, str]] = Counter()
        for item, result in zip(items, results, strict=True):
            if not isinstance(result, BaseException):
                routed[(item.category, item.queue)] += 1
                self.metrics.routing_latency.labels(item.category).observe(
                    max(0.0, now - item.received_at))
                outcome.ack += item.deliveries
                if len(item.deliveries) > 1:
                    self.metrics.duplicates_suppressed.inc(len(item.deliveries) - 1)
            elif isinstance(result, DeliveryError) and isinstance(result.frame,
                                                                   spec.Basic.Return):
                self.metrics.publish_failures.labels("unroutable").inc()
                for delivery in item.deliveries:
                    await self._reject(delivery, "unroutable",
                                       f"queue {item.queue!r} is not bound to "
                                       f"{self.settings.tickets_exchange!r}", outcome)
            else:
                reason = "timeout" if isinstance(result, TimeoutError) else "not_confirmed"
                self.metrics.publish_failures.labels(reason).inc()
                log.warning("a ticket was not confirmed (%s); its message is requeued",
                            type(result).__name__)
                outcome.requeue += item.deliveries
        for (category, queue), count in routed.items():
            self.metrics.tickets_routed.labels(category, queue).inc(count)

    async def _reject(self, delivery: AbstractIncomingMessage, reason: str, detail: str,
                      outcome: _Outcome) -> None:
        """Dead-letter a delivery with its reason, then ack it (never requeue it in a loop)."""
        assert self.topology is not None
        try:
            await dead_letter(self.topology.dead_exchange, delivery.body, reason=reason,
                              detail=detail, source_queue=self.settings.inbound_queue,
                              headers=delivery.headers,
                              timeout=self.settings.publish_timeout_seconds)
        except Exception as exc:
            log.error("dead-lettering failed (%s); the message is requeued", type(exc).__name__)
            outcome.requeue.append(delivery)
            return
        self.metrics.messages_dead_lettered.labels(reason).inc()
        outcome.ack.append(delivery)

    async def _retry_store(self, operation: str, func: Callable[..., Awaitable[T]],
                           *args: Any) -> T:
        """Run a store operation until it succeeds; while it fails nothing is acked."""
        key = object()
        self._store_calls[key] = time.monotonic()
        attempt = 0
        try:
            while True:
                try:
                    return await func(*args)
                except Exception as exc:
                    attempt += 1
                    self.metrics.store_errors.labels(operation).inc()
                    if self._stopping and attempt > 3:
                        raise
                    delay = compute_backoff(attempt)
                    log.warning("ticket store %s failed (%s); retry %d in %.1fs", operation,
                                type(exc).__name__, attempt, delay)
                    await asyncio.sleep(delay)
        finally:
            del self._store_calls[key]


def compute_backoff(attempt: int, *, base: float = 0.5, cap: float = 5.0) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): doubling, capped.

    The cap is short: while the store is down, messages wait in the queue, and a retry costs
    one query, so routing resumes within seconds of the store coming back.
    """
    return float(min(cap, base * (2 ** max(0, attempt - 1))))


async def _settle_all(outcome: _Outcome) -> None:
    """Requeue what must be retried, then ack the rest with one ack per channel.

    ``ack(multiple=True)`` on the highest delivery tag acks every earlier unsettled delivery of
    that channel: the requeues go first, and earlier batches are already settled.
    """
    for delivery in outcome.requeue:
        await _settle(delivery.nack(requeue=True))
    last: dict[int, AbstractIncomingMessage] = {}
    for delivery in outcome.ack:
        try:
            key = id(delivery.channel)
        except ChannelInvalidStateError:  # its channel closed: the broker requeued it already
            continue
        if key not in last or delivery.delivery_tag > last[key].delivery_tag:  # type: ignore[operator]
            last[key] = delivery
    for delivery in last.values():
        await _settle(delivery.ack(multiple=True))


async def _settle(action: Awaitable[Any]) -> None:
    """Ack or nack, tolerating a channel that closed meanwhile (the broker redelivers)."""
    try:
        await action
    except Exception as exc:
        log.warning("could not settle a delivery (%s); the broker will redeliver it",
                    type(exc).__name__)
