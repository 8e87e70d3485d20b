"""Lifecycle events and the SLA watchdog, through the real app, broker and store."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from triage.api import CTX, Context, build_app
from triage.broker import connect, declare, persistent
from triage.config import HEADER_REASON, Settings
from triage.events import event_body
from triage.lifecycle import Watchdog
from triage.metrics import Metrics

pytestmark = pytest.mark.broker
FAST_SLA = {c: {"sla_seconds": 2.0} for c in ("urgent", "crime_report", "complaint", "enquiry")}


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[tuple[Context, str]]:
    """The whole service (build_app) on a free port: its context and base URL."""
    app = build_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield app[CTX], f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def send(settings: Settings, exchange_name: str, bodies: list[bytes]) -> None:
    connection = await connect(settings)
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        await declare(channel, settings)
        exchange = await channel.get_exchange(exchange_name)
        for body in bodies:
            await exchange.publish(persistent(body), routing_key="")
    finally:
        await connection.close()


async def drain(settings: Settings, queue_name: str, want: int, timeout: float = 20,
                settle: float = 0.5) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(headers, body) of messages taken from a queue."""
    got: list[tuple[dict[str, Any], dict[str, Any]]] = []
    connection = await connect(settings)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(queue_name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = await queue.get(fail=False)
            if message is None:
                if len(got) >= want:
                    await asyncio.sleep(settle)
                    message = await queue.get(fail=False)
                    if message is None:
                        break
                else:
                    await asyncio.sleep(0.05)
                    continue
            got.append((dict(message.headers or {}), json.loads(message.body)))
            await message.ack()
    finally:
        await connection.close()
    return got


def inbound(message_id: str, text: str) -> bytes:
    return json.dumps({
        "id": message_id, "platform": "facebook", "kind": "comment", "text": text,
        "author": {"id": "u-" + message_id},
        "account": {"handle": "@NorthShiresPolice", "type": "force"}}).encode()


async def test_events_update_tickets_and_the_watchdog_escalates_once(
        amqp_url: str, settings_factory: Any, tmp_path: Path) -> None:
    settings = settings_factory(amqp_url, routes=FAST_SLA, watchdog_interval_seconds=0.2,
                                at_risk_share=0.5)
    complaint_queue = settings.routes["complaint"].queue
    text = "the officer who came to my house was rude and dismissive, I want to complain"
    async with serving(settings) as (ctx, url):
        assert ctx.store is not None
        # a second watchdog on the same store, as on a second worker: no double escalation
        other = Watchdog(settings, ctx.store, Metrics(settings))
        await other.start(ctx.connection, ctx.worker.topology)  # type: ignore[union-attr,arg-type]
        try:
            await send(settings, settings.inbound_exchange,
                       [inbound("met-1", text), inbound("late-1", text + " again")])
            tickets = {b["message"]["id"]: b for _, b in
                       await drain(settings, complaint_queue, 2)}
            assert set(tickets) == {"met-1", "late-1"}
            met = tickets["met-1"]["ticket_id"]
            now = datetime.now(UTC)
            events = [
                event_body(met, "responded", now, event_id="e1", agent="agent-7"),
                event_body(met, "claimed", now, event_id="e2", agent="agent-7"),  # late
                event_body(met, "responded", now, event_id="e1", agent="agent-7"),  # repeat
                event_body(met, "reclassified", now, event_id="e3", category="enquiry"),
                event_body("no-such-ticket", "claimed", now, event_id="e4"),
                b'{"not": "an event"}',
            ]
            await send(settings, settings.events_exchange, events)
            escalated = await drain(settings, settings.escalations_queue, 1, timeout=15,
                                    settle=1.5)
            dead = await drain(settings, settings.dead_queue, 2)
            async with aiohttp.ClientSession() as session:
                async with session.get(url + "/readyz") as response:
                    assert response.status == 200, await response.text()
                async with session.get(url + "/metrics") as response:
                    exposition = await response.text()
            row = await ctx.store.get(met)
        finally:
            await other.stop()

    assert [b["message"]["id"] for _, b in escalated] == ["late-1"]
    assert escalated[0][1]["escalation"]["reason"] == "sla_breached"
    assert sorted(h[HEADER_REASON] for h, _ in dead) == ["schema_invalid", "unknown_ticket"]
    assert row is not None and row["state"] == "responded"
    assert row["reclassified_to"] == "enquiry" and row["agent"] == "agent-7"
    metrics = ctx.metrics
    assert metrics.sla_met.labels("complaint", "true")._value.get() == 1
    # whichever watchdog won the conditional update counted it: once in all
    for counter in ("sla_breaches", "escalations"):
        assert sum(getattr(m, counter).labels("complaint")._value.get()
                   for m in (metrics, other.metrics)) == 1
    assert 'triage_sla_breaches_total{category="complaint"}' in exposition
    assert "agent-7" not in exposition and "met-1" not in exposition


async def test_feedback_export_writes_corrections(amqp_url: str, settings_factory: Any,
                                                  tmp_path: Path) -> None:
    from triage.cli import _feedback

    settings = settings_factory(amqp_url)
    async with serving(settings) as (ctx, _):
        await send(settings, settings.inbound_exchange,
                   [inbound("fb-1", "great photo of the police horses today")])
        [(_, ticket)] = await drain(settings, settings.routes["chatter"].queue, 1)
        await send(settings, settings.events_exchange, [event_body(
            ticket["ticket_id"], "reclassified", datetime.now(UTC), event_id="r1",
            category="enquiry")])
        for _ in range(100):
            row = await ctx.store.get(ticket["ticket_id"])  # type: ignore[union-attr]
            if row and row["reclassified_to"]:
                break
            await asyncio.sleep(0.05)
    rows = await _feedback(settings)
    assert rows == [{"id": f"fb-{ticket['ticket_id']}",
                     "text": "great photo of the police horses today", "label": "enquiry",
                     "split": "train", "source": "feedback", "model_category": "chatter",
                     "model_version": ticket["model_version"], "kind": "comment",
                     "platform": "facebook"}]
