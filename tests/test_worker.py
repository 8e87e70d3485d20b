"""The worker against the real RabbitMQ: every message once in the right queue, nothing lost."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from triage.api import load_models
from triage.broker import connect, declare, persistent
from triage.config import HEADER_REASON, Settings
from triage.consume import ModelRef, Worker
from triage.metrics import Metrics
from triage.route import decide
from triage.schema import ticket_id
from triage.store import Store

pytestmark = pytest.mark.broker
FEED = Path(__file__).resolve().parent.parent / "triage" / "samples" / "feed.jsonl"


def inbound(message_id: str, text: str, **extra: Any) -> dict[str, Any]:
    """An inbound message v1."""
    return {"id": message_id, "platform": "x", "kind": "dm", "text": text,
            "created_at": "2026-11-21T10:00:00Z", "author": {"id": "u-" + message_id},
            "account": {"handle": "@NorthShiresPolice", "type": "force"}, **extra}


@dataclass
class Running:
    settings: Settings
    worker: Worker
    store: Store
    metrics: Metrics
    connection: Any
    models: ModelRef


@asynccontextmanager
async def running_worker(settings: Settings, models: ModelRef | None = None,
                         ) -> AsyncIterator[Running]:
    """A started worker with its own connection and store; stopped on exit."""
    models = models or load_models(settings)
    metrics = Metrics(settings)
    store = await Store.open(settings.db_url)
    connection = await connect(settings)
    worker = Worker(settings, store, models, metrics)
    await worker.start(connection)
    try:
        yield Running(settings, worker, store, metrics, connection, models)
    finally:
        await worker.stop()
        await connection.close()
        await store.close()


async def publish(settings: Settings, bodies: Sequence[bytes], topology: bool = True) -> None:
    connection = await connect(settings)
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        if topology:
            await declare(channel, settings)
        exchange = await channel.get_exchange(settings.inbound_exchange)
        await asyncio.gather(*(exchange.publish(persistent(b), routing_key="") for b in bodies))
    finally:
        await connection.close()


@dataclass
class Collected:
    tickets: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    dead: list[tuple[dict[str, Any], bytes]] = field(default_factory=list)


async def collect(settings: Settings, *, tickets: int, dead: int = 0,
                  timeout: float = 60.0, settle: float = 1.0) -> Collected:
    """Drain every ticket queue and the dead-letter queue until the counts arrive."""
    got = Collected()
    connection = await connect(settings)
    try:
        channel = await connection.channel()
        await declare(channel, settings)

        def on_ticket(queue_name: str) -> Any:
            async def handler(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                got.tickets.append((queue_name, json.loads(message.body)))
                await message.ack()
            return handler

        async def on_dead(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            got.dead.append((dict(message.headers or {}), message.body))
            await message.ack()

        for name in settings.ticket_queues:
            queue = await channel.get_queue(name)
            await queue.consume(on_ticket(name))
        await (await channel.get_queue(settings.dead_queue)).consume(on_dead)
        deadline = time.monotonic() + timeout
        while (len(got.tickets) < tickets or len(got.dead) < dead) and \
                time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(settle)  # anything extra (a duplicate) would arrive now
    finally:
        await connection.close()
    return got


def feed() -> list[bytes]:
    return [line.encode() for line in FEED.read_text().splitlines() if line.strip()]


async def test_replayed_feed_arrives_once_each_in_the_right_queue(
        amqp_url: str, settings_factory: Any) -> None:
    settings = settings_factory(amqp_url)
    lines = feed()
    valid = {}
    for line in lines:
        try:
            body = json.loads(line)
        except json.JSONDecodeError:
            continue
        if body.get("kind") in {"dm", "mention", "reply", "comment"} and body["text"].strip() \
                and body.get("version", 1) == 1:
            valid[body["id"]] = body
    models = load_models(settings)
    ids = list(valid)
    expected = {i: decide(p, models.rules).queue
                for i, p in zip(ids, models.model.predict([valid[i]["text"] for i in ids]),
                                strict=True)}

    async with running_worker(settings, models) as run:
        await publish(settings, lines)
        got = await collect(settings, tickets=len(valid), dead=4)
        assert await run.store.count() == len(valid)

    seen = [t["message"]["id"] for _, t in got.tickets]
    assert sorted(seen) == sorted(valid), "every valid message exactly once"
    for queue_name, ticket in got.tickets:
        assert queue_name == expected[ticket["message"]["id"]] == ticket["queue"]
        assert ticket["ticket_id"] == ticket_id(ticket["message"]["platform"],
                                                ticket["message"]["id"])
        assert ticket["model_version"] == models.model.version
        assert ticket["reasons"] and ticket["routed_at"]
        if ticket["category"] != "chatter":
            assert ticket["respond_by"]
    reasons = sorted(h[HEADER_REASON] for h, _ in got.dead)
    assert reasons == ["empty_text", "not_json", "schema_invalid", "unknown_schema_version"]
    assert run.metrics.duplicates_suppressed._value.get() == 1


async def test_resent_and_redelivered_messages_yield_no_second_ticket(
        amqp_url: str, settings_factory: Any) -> None:
    settings = settings_factory(amqp_url)
    body = json.dumps(inbound("dup-1", "my bike was stolen from outside the gym")).encode()
    async with running_worker(settings) as run:
        await publish(settings, [body])
        first = await collect(settings, tickets=1, settle=0.2)
        await publish(settings, [body, body])
        again = await collect(settings, tickets=0, settle=1.5)
        assert await run.store.count() == 1
        assert run.metrics.duplicates_suppressed._value.get() == 2
    assert len(first.tickets) == 1 and again.tickets == []


async def test_recorded_but_unconfirmed_ticket_is_published_again(
        amqp_url: str, settings_factory: Any) -> None:
    """A crash between recording and the broker's confirm: the redelivery republishes it."""
    settings = settings_factory(amqp_url)
    message = inbound("crash-1", "someone smashed my car window last night")
    async with running_worker(settings) as run:
        # what a crashed worker leaves behind: a row without published_at
        from triage.consume import ticket_row
        from triage.schema import InboundMessage

        parsed = InboundMessage.model_validate(message)
        decision = decide(run.models.model.predict([parsed.text])[0], run.models.rules)
        row, _ = ticket_row(parsed, decision, "crashed-run", time.time(), time.time())
        await run.store.record_new([row])
        await publish(settings, [json.dumps(message).encode()])
        got = await collect(settings, tickets=1, settle=1.0)
        stored = await run.store.get(parsed.ticket_id)
    assert len(got.tickets) == 1
    assert got.tickets[0][1]["model_version"] == "crashed-run", "the stored ticket, not a new one"
    assert stored is not None and stored["published_at"] is not None
    assert run.metrics.tickets_republished._value.get() == 1


async def test_unroutable_ticket_is_dead_lettered_with_its_reason(
        amqp_url: str, settings_factory: Any) -> None:
    settings = settings_factory(amqp_url)
    async with running_worker(settings) as run:
        channel = await run.connection.channel()
        for queue_name in settings.ticket_queues:  # contact-centre queues gone
            await channel.queue_delete(queue_name)
        await publish(settings, [json.dumps(inbound("lost-1", "thanks for the help")).encode()],
                      topology=False)
        connection = await connect(settings)
        dead: list[dict[str, Any]] = []
        try:
            ch = await connection.channel()
            queue = await ch.get_queue(settings.dead_queue)
            for _ in range(100):
                message = await queue.get(fail=False)
                if message:
                    dead.append(dict(message.headers or {}))
                    await message.ack()
                    break
                await asyncio.sleep(0.1)
        finally:
            await connection.close()
    assert dead and dead[0][HEADER_REASON] == "unroutable"
    assert run.metrics.publish_failures.labels("unroutable")._value.get() == 1


async def test_poison_message_is_retried_then_dead_lettered_by_the_delivery_limit(
        amqp_url: str, settings_factory: Any) -> None:
    settings = settings_factory(amqp_url, delivery_limit=2)
    models = load_models(settings)
    real_predict = models.model.predict

    def predict(texts: Sequence[str]) -> Any:
        if any("POISON" in t for t in texts):
            raise RuntimeError("boom")
        return real_predict(texts)

    models.model.predict = predict  # type: ignore[method-assign]
    async with running_worker(settings, models):
        await publish(settings, [json.dumps(inbound("p-1", "POISON pill")).encode(),
                                 json.dumps(inbound("ok-1", "where is lost property")).encode()])
        got = await collect(settings, tickets=1, dead=1, timeout=30)
    assert [t["message"]["id"] for _, t in got.tickets] == ["ok-1"]
    headers, body = got.dead[0]
    assert json.loads(body)["id"] == "p-1"
    assert headers.get("x-first-death-reason") == "delivery_limit"


async def _two_workers(settings: Settings) -> None:
    n = 600
    bodies = [json.dumps(inbound(f"m-{i}", text)).encode()
              for i, text in enumerate(_texts(n))]
    bodies += bodies[:100]  # re-sent copies race between the two workers
    async with running_worker(settings) as one, running_worker(settings) as two:
        await publish(settings, bodies)
        got = await collect(settings, tickets=n, timeout=90, settle=1.5)
        assert one.worker.handled > 0 and two.worker.handled > 0, "both workers took a share"
        assert await one.store.count() == n
    ids = [t["message"]["id"] for _, t in got.tickets]
    assert len(set(ids)) == n
    # at-least-once: a copy racing its original may be delivered twice, never as two tickets
    for message_id in set(ids):
        same = {t["ticket_id"] for _, t in got.tickets if t["message"]["id"] == message_id}
        assert len(same) == 1


async def test_two_workers_share_a_queue_without_duplicate_tickets_sqlite(
        amqp_url: str, settings_factory: Any) -> None:
    await _two_workers(settings_factory(amqp_url, prefetch=50, batch_max=25))


@pytest.mark.postgres
async def test_two_workers_share_a_queue_without_duplicate_tickets_postgres(
        amqp_url: str, settings_factory: Any, pg_url: str) -> None:
    await _two_workers(settings_factory(amqp_url, prefetch=50, batch_max=25, db_url=pg_url))


def _texts(n: int) -> list[str]:
    rows = [json.loads(line) for line in
            (Path(__file__).resolve().parent.parent / "models" / "corpus" / "corpus.jsonl")
            .read_text().splitlines()]
    return [rows[i % len(rows)]["text"] for i in range(n)]


async def test_ticket_bodies_follow_the_ticket_v1_contract(amqp_url: str,
                                                           settings_factory: Any) -> None:
    from triage.schema import Ticket

    settings = settings_factory(amqp_url)
    async with running_worker(settings):
        await publish(settings, [json.dumps(inbound(f"c-{i}", t)).encode() for i, t in
                                 enumerate(["he is outside with a knife right now",
                                            "thanks for the quick help today"])])
        got = await collect(settings, tickets=2, settle=0.3)
    for _, body in got.tickets:
        ticket = Ticket.model_validate(body)
        assert ticket.ticket_id == ticket.message.ticket_id


async def test_a_store_write_that_waits_shows_as_stalled(tmp_path: Path) -> None:
    """/readyz's store_writes check: how long the oldest running store call has waited."""
    from tests.conftest import make_settings

    settings = make_settings(tmp_path)
    store = await Store.open(settings.db_url)
    worker = Worker(settings, store, load_models(settings), Metrics(settings))
    release = asyncio.Event()

    async def locked_out(rows: list[str]) -> int:
        await release.wait()
        return len(rows)

    try:
        assert worker.store_stalled_for() == 0.0
        call = asyncio.create_task(worker._retry_store("record", locked_out, ["a"]))
        await asyncio.sleep(0.3)
        assert 0.2 < worker.store_stalled_for() < 5
        release.set()
        assert await call == 1
        assert worker.store_stalled_for() == 0.0
    finally:
        await store.close()
