"""The ticket store's worker path on both databases: the same answers from SQLite's SQL text
and PostgreSQL's Core statements, across statement chunks."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from triage import store as store_module
from triage.consume import ticket_row
from triage.route import Decision
from triage.schema import InboundMessage, decode
from triage.store import ROW_COLUMNS, Store


def row(ticket_id: str, body: str = "{}") -> dict[str, Any]:
    """A new ticket row as the worker writes it."""
    return {"ticket_id": ticket_id, "platform": "x", "message_id": ticket_id,
            "category": "enquiry", "queue": "cc.enquiries", "priority": 4, "review": False,
            "confidence": 0.9, "model_version": "v1", "sla_seconds": 3600.0, "sla_start": 1.0,
            "respond_by": 3601.0, "received_at": 1.0, "routed_at": 2.0, "state": "routed",
            "body": body}


def test_the_worker_rows_carry_exactly_the_bound_columns() -> None:
    """SQLite binds ROW_COLUMNS only: a column ticket_row gains must be added there too."""
    message = decode(json.dumps({
        "id": "m1", "platform": "x", "kind": "dm", "text": "where is lost property",
        "created_at": "2026-11-21T10:00:00Z", "author": {"id": "u1"},
        "account": {"handle": "@NorthShiresPolice", "type": "force"}}).encode(),
        max_bytes=65536, received_at=datetime.now(UTC))
    assert isinstance(message, InboundMessage)
    decision = Decision("enquiry", "cc.enquiries", 4, 3600.0, 0.9, False, ("lost",))
    worker_row, _body = ticket_row(message, decision, "v1", 1.0, 2.0)
    assert set(worker_row) == set(ROW_COLUMNS) == set(row("t"))


async def test_sqlite_worker_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "SQLITE_CHUNK", 7)  # several statements per batch
    await _record_then_mark(f"sqlite:///{tmp_path / 'tickets.db'}")


async def test_postgres_worker_path(pg_url: str) -> None:
    await _record_then_mark(pg_url)


async def _record_then_mark(url: str) -> None:
    """record_new says what existed (with its stored state); mark_published marks once."""
    store = await Store.open(url)
    try:
        await _check(store)
    finally:
        await store.close()


async def _check(store: Store) -> None:
    first = [row(f"t{i}", body=f'{{"n": {i}}}') for i in range(20)]
    assert await store.record_new(first) == {}
    await store.mark_published([f"t{i}" for i in range(0, 20, 2)], at=10.0)
    await store.mark_published(["t0", "t1"], at=99.0)  # t0 already published: kept at 10

    again = [row(f"t{i}", body="other") for i in range(15, 30)]
    existing = await store.record_new(again)
    assert sorted(existing) == [f"t{i}" for i in range(15, 20)]
    for tid, stored in existing.items():
        n = int(tid[1:])
        assert stored.published == (n % 2 == 0)
        assert stored.body == f'{{"n": {n}}}'  # the stored body, not the new one
    assert await store.count() == 30

    t0, t1, t25 = [await store.get(t) for t in ("t0", "t1", "t25")]
    assert t0 is not None and t0["published_at"] == 10.0 and t0["review"] is False
    assert t1 is not None and t1["published_at"] == 99.0
    assert t25 is not None and t25["published_at"] is None and t25["body"] == "other"
