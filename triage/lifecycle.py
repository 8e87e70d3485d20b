"""Ticket lifecycle at run time: lifecycle events applied to the store, and the SLA watchdog.

Several workers may run both. Everything that must happen once (counting a first response,
marking a ticket at risk or breached, escalating it) is decided by a conditional UPDATE in
the store: the process whose update changed the row does it, the others do nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection

from triage import events, sla
from triage.broker import Topology, dead_letter, persistent, publish_confirmed, queue_arguments
from triage.config import HEADER_SCHEMA, Settings
from triage.metrics import Metrics
from triage.schema import Rejection
from triage.store import Store, tickets

log = logging.getLogger("triage.lifecycle")
LOWER_STATES = {state: [s for s, r in events.STATE_RANK.items() if r < rank]
                for state, rank in events.STATE_RANK.items()}


async def apply_event(store: Store, settings: Settings, metrics: Metrics,
                      event: events.Event) -> str:
    """Apply one event to its ticket; return the outcome (a bounded metric label)."""
    row = await store.get(event.ticket_id)
    if row is None:
        return "unknown_ticket"
    change = events.transition(row, event, settings.routes)
    values = dict(change.values)
    changed = False
    tid = event.ticket_id
    state = values.pop("state", None)
    if state is not None:
        changed |= await store.update_where(tid, [tickets.c.state.in_(LOWER_STATES[state])],
                                            {"state": state})
    for column, extra in (("claimed_at", ("agent",)), ("resolved_at", ())):
        if column in values:
            update = {column: values.pop(column)}
            update.update({k: values.pop(k) for k in extra if k in values})
            changed |= await store.update_where(tid, [tickets.c[column].is_(None)], update)
    if "responded_at" in values:
        responded_at = values.pop("responded_at")
        if await store.update_where(tid, [tickets.c.responded_at.is_(None)],
                                    {"responded_at": responded_at}):
            changed = True
            fresh = await store.get(tid) or row
            waited = max(0.0, responded_at - fresh["sla_start"])
            status = sla.status(responded_at, fresh["sla_start"], fresh["sla_seconds"],
                                responded_at, settings.at_risk_share)
            metrics.first_response.labels(fresh["category"]).observe(waited)
            if status in (sla.Status.MET, sla.Status.MISSED):
                metrics.sla_met.labels(fresh["category"],
                                       "true" if status is sla.Status.MET else "false").inc()
    if values:  # reclassification
        changed |= await store.update_where(
            tid, [(tickets.c.reclassified_to.is_(None))
                  | (tickets.c.reclassified_to != values["reclassified_to"])], values)
    return "applied" if changed else "no_change"


class EventConsumer:
    """Consumes ``triage.events`` and applies each event to the ticket store."""

    def __init__(self, settings: Settings, store: Store, metrics: Metrics) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.channel: AbstractChannel | None = None
        self._tag: str | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        # aio-pika runs callbacks concurrently; events of one ticket must apply in order
        self._lock = asyncio.Lock()

    async def start(self, connection: AbstractRobustConnection, topology: Topology) -> None:
        """Start consuming the events queue."""
        self.topology = topology
        self.channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        await self.channel.set_qos(prefetch_count=50)
        # declared, so that the robust channel restores the consumer after a reconnect
        self._queue = await self.channel.declare_queue(
            self.settings.events_queue, durable=True, arguments=queue_arguments(self.settings))
        self._dead = await self.channel.get_exchange(self.settings.dead_exchange, ensure=False)
        self._tag = await self._queue.consume(self._on_message)
        self.metrics.consumers.labels(self.settings.events_queue).set(1)

    @property
    def consuming(self) -> bool:
        """True while the consumer is attached on an open channel."""
        return bool(self._tag and self.channel is not None and not self.channel.is_closed)

    async def stop(self) -> None:
        """Stop consuming and finish what is in flight."""
        if self._tag is not None and self.channel is not None and not self.channel.is_closed:
            await self._queue.cancel(self._tag)
        self.metrics.consumers.labels(self.settings.events_queue).set(0)
        if self._inflight:
            await asyncio.wait(self._inflight, timeout=self.settings.shutdown_grace_seconds)
        if self.channel is not None and not self.channel.is_closed:
            await self.channel.close()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            async with self._lock:
                await self.handle(message)
        finally:
            if task is not None:
                self._inflight.discard(task)

    async def handle(self, message: AbstractIncomingMessage) -> None:
        """Apply one event message; dead-letter it with a reason when it cannot be."""
        parsed = events.parse(message.body)
        if isinstance(parsed, Rejection):
            await self._reject(message, parsed.reason, parsed.detail)
            return
        try:
            outcome = await apply_event(self.store, self.settings, self.metrics, parsed)
        except Exception as exc:
            self.metrics.store_errors.labels("apply_event").inc()
            log.warning("applying an event failed (%s); requeued", type(exc).__name__)
            await asyncio.sleep(1.0)
            await message.nack(requeue=True)
            return
        if outcome == "unknown_ticket":
            await self._reject(message, "unknown_ticket", "no ticket with that ticket_id")
            return
        self.metrics.events_applied.labels(parsed.type, outcome).inc()
        await message.ack()

    async def _reject(self, message: AbstractIncomingMessage, reason: str, detail: str) -> None:
        await dead_letter(self._dead, message.body, reason=reason, detail=detail,
                          source_queue=self.settings.events_queue, headers=message.headers,
                          timeout=self.settings.publish_timeout_seconds)
        self.metrics.messages_dead_lettered.labels(reason).inc()
        await message.ack()


class Watchdog:
    """Marks tickets at risk and breached once each, escalates breaches, updates the gauges."""

    def __init__(self, settings: Settings, store: Store, metrics: Metrics, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self._task: asyncio.Task[None] | None = None

    async def start(self, connection: AbstractRobustConnection, topology: Topology) -> None:
        """Open a publishing channel and start the periodic check."""
        self.channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        self.exchange = await self.channel.get_exchange(self.settings.tickets_exchange,
                                                        ensure=False)
        self._task = asyncio.create_task(self._run(), name="triage-watchdog")

    async def stop(self) -> None:
        """Stop the periodic check."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if not self.channel.is_closed:
            await self.channel.close()

    async def _run(self) -> None:
        while True:
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.metrics.store_errors.labels("watchdog").inc()
                log.warning("watchdog check failed (%s)", type(exc).__name__)
            await asyncio.sleep(self.settings.watchdog_interval_seconds)

    async def check(self) -> None:
        """One pass over unanswered tickets."""
        now = self.clock()
        rows = await self.store.unanswered(now, self.settings.at_risk_share)
        at_risk, breached = [], []
        for row in rows:
            status = sla.status(now, row["sla_start"], row["sla_seconds"], None,
                                self.settings.at_risk_share)
            if status in (sla.Status.AT_RISK, sla.Status.BREACHED) and row["at_risk_at"] is None:
                at_risk.append(row)
            if status is sla.Status.BREACHED and row["breached_at"] is None:
                breached.append(row)
        oldest = await self.store.oldest_unanswered()
        for category in self.settings.routes:
            start = oldest.get(category)
            self.metrics.oldest_unanswered.labels(category).set(
                0.0 if start is None else max(0.0, now - start))
        by_id = {r["ticket_id"]: r for r in at_risk}
        for tid in await self.store.claim_once("at_risk_at", list(by_id), now):
            self.metrics.sla_at_risk.labels(by_id[tid]["category"]).inc()
        by_id = {r["ticket_id"]: r for r in breached}
        for tid in await self.store.claim_once("breached_at", list(by_id), now):
            self.metrics.sla_breaches.labels(by_id[tid]["category"]).inc()
        await self._escalate(now)
        counts: dict[tuple[str, str], int] = {}
        for category, state, count in await self.store.open_counts():
            counts[(category, state)] = count
        for category in self.settings.routes:
            for state in ("routed", "claimed", "responded"):
                self.metrics.tickets_open.labels(category, state).set(
                    counts.get((category, state), 0))

    async def _escalate(self, now: float) -> None:
        """Publish each breached, unescalated ticket to the escalations queue, once."""
        for row in await self.store.unescalated():
            won = await self.store.claim_once("escalated_at", [row["ticket_id"]], now)
            if not won:
                continue
            body: dict[str, Any] = orjson.loads(row["body"])
            body["escalation"] = {"reason": "sla_breached", "category": row["category"],
                                  "respond_by": row["respond_by"], "escalated_at": now}
            try:
                await publish_confirmed(self.exchange, persistent(
                    orjson.dumps(body), message_id=row["ticket_id"],
                    headers={HEADER_SCHEMA: "escalation/1", "category": row["category"]}),
                    self.settings.escalations_queue, self.settings.publish_timeout_seconds)
            except Exception as exc:
                log.warning("escalation not confirmed (%s); will retry", type(exc).__name__)
                await self.store.update_where(row["ticket_id"],
                                              [tickets.c.escalated_at == now],
                                              {"escalated_at": None})
                continue
            self.metrics.escalations.labels(row["category"]).inc()
