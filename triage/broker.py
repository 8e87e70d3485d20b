"""RabbitMQ topology and the publishing primitives every producer here uses.

The service declares its topology idempotently at start-up: durable quorum queues with
at-least-once dead-lettering into ``triage.dead`` and an explicit delivery limit, so that a
poison message ends in the dead-letter queue instead of looping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractQueue,
    AbstractRobustConnection,
)

from triage.config import HEADER_DETAIL, HEADER_REASON, HEADER_SOURCE_QUEUE, Settings


@dataclass(frozen=True)
class Topology:
    """Declared exchanges and queues."""

    inbound_exchange: AbstractExchange
    inbound_queue: AbstractQueue
    tickets_exchange: AbstractExchange
    dead_exchange: AbstractExchange
    events_exchange: AbstractExchange
    events_queue: AbstractQueue


def queue_arguments(settings: Settings) -> dict[str, Any]:
    """Arguments of every work queue: quorum, at-least-once dead-lettering, delivery limit."""
    return {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": settings.dead_exchange,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
        "x-delivery-limit": settings.delivery_limit,
    }


async def connect(settings: Settings) -> AbstractRobustConnection:
    """A robust connection (reconnects and restores channels, queues and consumers)."""
    return await aio_pika.connect_robust(settings.amqp_url, client_properties={
        "connection_name": "triage"})


async def declare(channel: AbstractChannel, settings: Settings) -> Topology:
    """Declare (idempotently) every exchange, queue and binding of the service."""
    durable = aio_pika.ExchangeType
    dead_x = await channel.declare_exchange(settings.dead_exchange, durable.FANOUT, durable=True)
    dead_q = await channel.declare_queue(settings.dead_queue, durable=True,
                                         arguments={"x-queue-type": "quorum"})
    await dead_q.bind(dead_x)
    args = queue_arguments(settings)

    inbound_x = await channel.declare_exchange(settings.inbound_exchange, durable.FANOUT,
                                               durable=True)
    inbound_q = await channel.declare_queue(settings.inbound_queue, durable=True, arguments=args)
    await inbound_q.bind(inbound_x)

    tickets_x = await channel.declare_exchange(settings.tickets_exchange, durable.DIRECT,
                                               durable=True)
    for name in settings.ticket_queues:
        queue = await channel.declare_queue(name, durable=True, arguments=args)
        await queue.bind(tickets_x, routing_key=name)

    events_x = await channel.declare_exchange(settings.events_exchange, durable.FANOUT,
                                              durable=True)
    events_q = await channel.declare_queue(settings.events_queue, durable=True, arguments=args)
    await events_q.bind(events_x)
    return Topology(inbound_x, inbound_q, tickets_x, dead_x, events_x, events_q)


def persistent(body: bytes, *, headers: Mapping[str, Any] | None = None,
               message_id: str | None = None) -> aio_pika.Message:
    """A persistent JSON message (a transient one would not survive a broker restart)."""
    return aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                            content_type="application/json", message_id=message_id,
                            headers=dict(headers or {}))


async def publish_confirmed(exchange: AbstractExchange, message: aio_pika.Message,
                            routing_key: str, timeout: float) -> None:
    """Publish mandatory and wait for the broker's confirm.

    The channel must have ``publisher_confirms=True, on_return_raises=True``: an unroutable
    message then raises ``aiormq.exceptions.DeliveryError`` instead of vanishing.
    """
    await exchange.publish(message, routing_key=routing_key, mandatory=True, timeout=timeout)


async def dead_letter(exchange: AbstractExchange, body: bytes, *, reason: str, detail: str,
                      source_queue: str, headers: Mapping[str, Any] | None,
                      timeout: float) -> None:
    """Put a refused body into the dead-letter exchange with its reason in the headers."""
    kept = {k: v for k, v in (headers or {}).items() if not k.startswith("x-triage-")}
    kept.update({HEADER_REASON: reason, HEADER_DETAIL: detail[:500],
                 HEADER_SOURCE_QUEUE: source_queue})
    await publish_confirmed(exchange, persistent(body, headers=kept), "", timeout)


async def publish_lines(channel: AbstractChannel, exchange_name: str, bodies: list[bytes],
                        timeout: float, window: int = 500) -> int:
    """Publish many bodies to an exchange with confirms, ``window`` in flight; return count."""
    exchange = await channel.get_exchange(exchange_name, ensure=True)
    sent = 0
    for start in range(0, len(bodies), window):
        chunk = bodies[start:start + window]
        await asyncio.gather(*(publish_confirmed(exchange, persistent(b), "", timeout)
                               for b in chunk))
        sent += len(chunk)
    return sent
