"""The service process: one wiring function and one lifespan for every resource.

:func:`build_app` turns a frozen :class:`Settings` into an aiohttp application whose lifespan
opens the ticket store, loads the verified model, connects to RabbitMQ and starts the worker;
on shutdown (SIGTERM) it stops consuming, finishes in-flight work and closes everything.
HTTP: ``/metrics`` for Prometheus, ``/healthz`` (alive) and ``/readyz`` (ready to work); the
front door (webhooks, inbound messages, ticket and admin APIs) is registered by
:func:`triage.http.add_routes` and publishes on its own confirming channel.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from triage.broker import connect
from triage.classify import load_model
from triage.config import Settings
from triage.consume import ModelRef, Worker
from triage.lifecycle import EventConsumer, Watchdog
from triage.metrics import Metrics
from triage.route import Rules
from triage.safety import load_rules
from triage.store import Store

log = logging.getLogger("triage.api")


@dataclass
class Context:
    """Everything the running service holds; handlers read it from ``app[CTX]``."""

    settings: Settings
    metrics: Metrics
    store: Store | None = None
    models: ModelRef | None = None
    connection: Any = None
    worker: Worker | None = None
    events: Any = None
    watchdog: Any = None
    http_channel: Any = None  # publisher-confirming channel of the HTTP front door
    reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # admin model changes


CTX = web.AppKey("ctx", Context)


def load_models(settings: Settings, version: str | None = None) -> ModelRef:
    """Load the safety rules and the verified model (the promoted one by default)."""
    model = load_model(settings.models_dir, load_rules(settings.safety_rules), version=version,
                       signing_key=settings.model_signing_key)
    return ModelRef(model=model, rules=Rules.from_settings(settings, model.urgent_threshold))


def _model_metrics(ctx: Context) -> None:
    assert ctx.models is not None
    ctx.metrics.model_info.info({"version": ctx.models.model.version})
    ctx.metrics.model_loaded.set(1)


async def _lifespan(app: web.Application) -> AsyncIterator[None]:
    ctx = app[CTX]
    settings = ctx.settings
    ctx.models = load_models(settings)
    _model_metrics(ctx)
    ctx.store = await Store.open(settings.db_url)
    ctx.connection = await connect(settings)
    ctx.metrics.broker_connected.set(1)
    ctx.connection.close_callbacks.add(lambda *_: ctx.metrics.broker_connected.set(0))
    ctx.connection.reconnect_callbacks.add(lambda *_: ctx.metrics.broker_connected.set(1))
    ctx.worker = Worker(settings, ctx.store, ctx.models, ctx.metrics)
    await ctx.worker.start(ctx.connection)
    assert ctx.worker.topology is not None
    ctx.events = EventConsumer(settings, ctx.store, ctx.metrics)
    await ctx.events.start(ctx.connection, ctx.worker.topology)
    ctx.watchdog = Watchdog(settings, ctx.store, ctx.metrics)
    await ctx.watchdog.start(ctx.connection, ctx.worker.topology)
    ctx.http_channel = await ctx.connection.channel(publisher_confirms=True,
                                                    on_return_raises=True)
    log.info("triage service ready: model %s, store %s", ctx.models.model.version,
             ctx.store.dialect)
    try:
        yield
    finally:
        await ctx.worker.stop()
        await ctx.events.stop()
        await ctx.watchdog.stop()
        if not ctx.http_channel.is_closed:
            await ctx.http_channel.close()
        await ctx.connection.close()
        await ctx.store.close()
        ctx.metrics.model_loaded.set(0)


async def metrics_handler(request: web.Request) -> web.Response:
    """Prometheus exposition of this process's metrics."""
    ctx = request.app[CTX]
    body = generate_latest(ctx.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def healthz(request: web.Request) -> web.Response:
    """Alive: the process answers."""
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    """Ready: broker connected, consumer attached, model loaded, store reachable and writing."""
    ctx = request.app[CTX]
    checks = {
        "broker": bool(ctx.connection is not None and not ctx.connection.is_closed),
        "consumer": bool(ctx.worker is not None and ctx.worker.consuming),
        "events_consumer": bool(ctx.events is not None and ctx.events.consuming),
        "model": ctx.models is not None,
        "store": bool(ctx.store is not None and await ctx.store.ping()),
        # a read answers while SQLite is write-locked or writes fail: are writes getting done?
        "store_writes": bool(ctx.worker is not None and ctx.worker.store_stalled_for()
                             < ctx.settings.store_stall_seconds),
    }
    ready = all(checks.values())
    return web.json_response({"status": "ready" if ready else "not ready", "checks": checks},
                             status=200 if ready else 503)


def build_app(settings: Settings, metrics: Metrics | None = None) -> web.Application:
    """The whole service from a frozen settings object."""
    from triage.http import add_routes  # triage.http imports this module

    app = web.Application(client_max_size=settings.max_body_bytes)
    app[CTX] = Context(settings=settings, metrics=metrics or Metrics(settings))
    app.cleanup_ctx.append(_lifespan)
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    add_routes(app)
    return app
