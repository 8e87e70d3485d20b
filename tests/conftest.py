"""Shared fixtures. Tests that need RabbitMQ or PostgreSQL use the real servers: they skip
when one does not answer on a developer's machine, and fail in CI (``CI`` set)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from triage import config
from triage.config import CATEGORIES, Settings

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_MODELS = ROOT / "models"
IN_CI = bool(os.environ.get("CI"))


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require(service: str, available: bool) -> None:
    """Skip locally, fail in CI, when a real service is not there."""
    if available:
        return
    message = f"{service} is not reachable"
    if IN_CI:
        pytest.fail(message + " (CI must run every test against the real server)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """A fresh RabbitMQ vhost for this test session, deleted afterwards."""
    require("RabbitMQ on 127.0.0.1:5672",
            _answers("127.0.0.1", 5672) and shutil.which("rabbitmqctl") is not None)
    vhost = f"triage-test-{os.getpid()}"
    subprocess.run(["rabbitmqctl", "add_vhost", vhost], check=True, capture_output=True)
    subprocess.run(["rabbitmqctl", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
                   check=True, capture_output=True)
    yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    subprocess.run(["rabbitmqctl", "delete_vhost", vhost], capture_output=True)


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """PostgreSQL on 127.0.0.1 with trust auth."""
    require("PostgreSQL on 127.0.0.1:5432", _answers("127.0.0.1", 5432))
    return "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
async def pg_url(pg_admin_url: str) -> AsyncIterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    import asyncpg

    name = f"triage_test_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(pg_admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    conn = await asyncpg.connect(pg_admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def shipped_models() -> Path:
    """The models folder of the repository (read-only: copy it before changing it)."""
    if not (SHIPPED_MODELS / "registry.json").exists():
        pytest.fail("no shipped model: run `triage train --promote`")
    return SHIPPED_MODELS


def make_settings(tmp_path: Path, amqp_url: str | None = None, **overrides: Any) -> Settings:
    """Settings with every exchange and queue name prefixed, so tests do not collide."""
    prefix = "t" + uuid.uuid4().hex[:8]
    routes: dict[str, dict[str, Any]] = {c: {"queue": f"{prefix}.cc.{c}"} for c in CATEGORIES}
    values: dict[str, Any] = {
        "amqp_url": amqp_url or "amqp://guest:guest@127.0.0.1:5672/",
        "db_url": f"sqlite:///{tmp_path / 'tickets.db'}",
        "models_dir": SHIPPED_MODELS,
        "inbound_exchange": f"{prefix}.inbound", "inbound_queue": f"{prefix}.inbound",
        "tickets_exchange": f"{prefix}.tickets", "dead_exchange": f"{prefix}.dead",
        "dead_queue": f"{prefix}.dead", "events_exchange": f"{prefix}.events",
        "events_queue": f"{prefix}.events", "escalations_queue": f"{prefix}.cc.escalations",
        "review_queue": f"{prefix}.cc.review", "routes": routes, "http_port": 0,
        "batch_max": 50, "prefetch": 100, "shutdown_grace_seconds": 10,
        "eval_dir": ROOT.parent / "shared" / "eval",
    }
    for category, route in overrides.pop("routes", {}).items():
        routes[category].update(route)
    values.update(overrides)
    return config.load(**values)


@pytest.fixture
def settings_factory(tmp_path: Path) -> Any:
    """Build isolated settings: ``settings_factory(amqp_url, **overrides)``."""
    def build(amqp_url: str | None = None, **overrides: Any) -> Settings:
        return make_settings(tmp_path, amqp_url, **overrides)
    return build
