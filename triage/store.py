"""The ticket store: the idempotency key of the worker and the state of every ticket.

SQLAlchemy Core over SQLite (default, one file) or PostgreSQL (``TRIAGE_DB_URL``), async.
Times are Unix seconds (``float``) so both databases compare them the same way.

A ticket row is written *before* its ticket is published and marked ``published_at`` once the
broker confirmed it: a redelivered message whose row is published is a duplicate; one whose row
is not yet published is published again from the stored body.

The ``audit`` table records every ticket and admin action of the HTTP API: who (the token's
name), in which role, what, on which ticket or model, when, and the outcome; never message text.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

T = TypeVar("T")
metadata = sa.MetaData()

tickets = sa.Table(
    "tickets", metadata,
    sa.Column("ticket_id", sa.String(64), primary_key=True),
    sa.Column("platform", sa.String(32), nullable=False),
    sa.Column("message_id", sa.String(200), nullable=False),
    sa.Column("category", sa.String(32), nullable=False),
    sa.Column("queue", sa.String(200), nullable=False),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("review", sa.Boolean, nullable=False, default=False),
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("sla_seconds", sa.Float, nullable=True),
    sa.Column("sla_start", sa.Float, nullable=False),
    sa.Column("respond_by", sa.Float, nullable=True),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("routed_at", sa.Float, nullable=False),
    sa.Column("published_at", sa.Float, nullable=True),
    sa.Column("state", sa.String(16), nullable=False, default="routed"),
    sa.Column("claimed_at", sa.Float, nullable=True),
    sa.Column("responded_at", sa.Float, nullable=True),
    sa.Column("resolved_at", sa.Float, nullable=True),
    sa.Column("at_risk_at", sa.Float, nullable=True),
    sa.Column("breached_at", sa.Float, nullable=True),
    sa.Column("escalated_at", sa.Float, nullable=True),
    sa.Column("reclassified_to", sa.String(32), nullable=True),
    sa.Column("reclassified_at", sa.Float, nullable=True),
    sa.Column("agent", sa.String(200), nullable=True),
    sa.Column("body", sa.Text, nullable=False),
    sa.Index("ix_tickets_open", "state", "category", "sla_start"),
    sa.Index("ix_tickets_unpublished", "published_at"),
)

#: Who did what through the HTTP API, when, and with what outcome. Never message text.
audit = sa.Table(
    "audit", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(200), nullable=True),
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Index("ix_audit_at", "at"),
)


@dataclass(frozen=True, slots=True)
class Stored:
    """What the store already knows of a ticket id."""

    ticket_id: str
    published: bool
    body: str


class StoreError(Exception):
    """The ticket store cannot be reached or refused an operation."""


def _mark_published(conn: sa.Connection, ids: list[str], at: float) -> None:
    conn.execute(tickets.update().where(tickets.c.ticket_id.in_(ids))
                 .where(tickets.c.published_at.is_(None)).values(published_at=at))


# --- SQLite's hot path -----------------------------------------------------------------------
# The worker's two statements per batch, as SQL text on SQLite's synchronous driver: Core
# compiles and binds every row's parameters in Python, holding the GIL the event loop needs;
# bound as one flat tuple, the insert and the mark through this class cost about a third less
# (64-82 us a row against 105-116). PostgreSQL keeps the Core statements; tests/test_store.py
# runs both paths against the same assertions.

#: The columns of a new ticket row (:func:`triage.consume.ticket_row`), in binding order.
ROW_COLUMNS = ("ticket_id", "platform", "message_id", "category", "queue", "priority",
               "review", "confidence", "model_version", "sla_seconds", "sla_start",
               "respond_by", "received_at", "routed_at", "state", "body")
#: Rows per statement: SQLite allows 32,766 bound parameters.
SQLITE_CHUNK = 500


@functools.lru_cache(maxsize=64)
def _sqlite_insert(rows: int) -> str:
    one = "(" + ", ".join("?" * len(ROW_COLUMNS)) + ")"
    return (f"INSERT INTO tickets ({', '.join(ROW_COLUMNS)}) VALUES "
            f"{', '.join([one] * rows)} ON CONFLICT (ticket_id) DO NOTHING RETURNING ticket_id")


@functools.lru_cache(maxsize=64)
def _sqlite_mark(ids: int) -> str:
    return (f"UPDATE tickets SET published_at = ? WHERE published_at IS NULL "
            f"AND ticket_id IN ({', '.join('?' * ids)})")


def _sqlite_record_new(conn: sa.Connection, rows: list[Mapping[str, Any]]) -> set[str]:
    inserted: set[str] = set()
    for start in range(0, len(rows), SQLITE_CHUNK):
        chunk = rows[start:start + SQLITE_CHUNK]
        params = tuple(row[c] for row in chunk for c in ROW_COLUMNS)
        inserted.update(r[0] for r in conn.exec_driver_sql(_sqlite_insert(len(chunk)), params))
    return inserted


def _sqlite_mark_published(conn: sa.Connection, ids: list[str], at: float) -> None:
    for start in range(0, len(ids), SQLITE_CHUNK):
        chunk = ids[start:start + SQLITE_CHUNK]
        conn.exec_driver_sql(_sqlite_mark(len(chunk)), (at, *chunk))


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """WAL, so several processes can share the file; wait for locks instead of failing."""
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def async_url(url: str) -> str:
    """Map ``sqlite:///x.db`` and ``postgresql://…`` to their async drivers."""
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///"):]
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    return url


class Store:
    """Async access to the tickets table and the audit log."""

    def __init__(self, engine: AsyncEngine, sync_engine: sa.Engine | None = None) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        # SQLite: the worker's per-batch transactions run whole on one database thread with
        # the synchronous driver, one hop off the event loop per transaction instead of one
        # per statement, fetch and commit (aiosqlite): 1.7 ms instead of 4.5 ms for a small
        # batch's insert and update, and far fewer event-loop wake-ups.
        self._sync = sync_engine
        self._db_thread = (ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
                           if sync_engine is not None else None)

    @classmethod
    async def open(cls, url: str) -> Store:
        """Connect, set SQLite up for several processes (WAL), create the table if missing."""
        url = async_url(url)
        kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs.update(pool_size=5, max_overflow=5, pool_pre_ping=True)
        engine = create_async_engine(url, **kwargs)
        sync_engine = None
        if url.startswith("sqlite"):
            sync_engine = sa.create_engine(
                "sqlite://" + url.split("://", 1)[1],
                connect_args={"timeout": 30, "check_same_thread": False})
            for target in (engine.sync_engine, sync_engine):
                sa.event.listen(target, "connect", _sqlite_pragmas)
        store = cls(engine, sync_engine)
        # Workers starting together on a fresh store race to create the tables: the loser's
        # CREATE fails because the table now exists, and its next attempt finds it.
        for attempt in range(3):
            try:
                async with engine.begin() as conn:
                    await conn.run_sync(metadata.create_all)
                return store
            except Exception as exc:
                if attempt == 2:
                    await store.close()
                    raise StoreError(
                        f"cannot open the ticket store: {type(exc).__name__}") from exc
                await asyncio.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")

    async def close(self) -> None:
        """Release every connection."""
        await self.engine.dispose()
        if self._sync is not None and self._db_thread is not None:
            self._sync.dispose()
            self._db_thread.shutdown(wait=True)

    async def _transaction(self, work: Callable[..., T], *args: Any) -> T:
        """Run ``work(connection, *args)`` in one transaction, off the event loop."""
        if self._sync is not None:
            sync_engine = self._sync

            def run() -> T:
                with sync_engine.begin() as conn:
                    return work(conn, *args)
            return await asyncio.get_running_loop().run_in_executor(self._db_thread, run)
        async with self.engine.begin() as conn:
            return await conn.run_sync(work, *args)

    async def ping(self) -> bool:
        """True when the database answers."""
        try:
            async with self.engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
            return True
        except Exception:
            return False

    def _insert(self) -> Any:
        return (postgresql.insert(tickets) if self.dialect == "postgresql"
                else sqlite.insert(tickets))

    async def known(self, ticket_ids: Sequence[str]) -> dict[str, Stored]:
        """Tickets already recorded, by id."""
        if not ticket_ids:
            return {}
        query = sa.select(tickets.c.ticket_id, tickets.c.published_at, tickets.c.body).where(
            tickets.c.ticket_id.in_(list(ticket_ids)))
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {r.ticket_id: Stored(r.ticket_id, r.published_at is not None, r.body)
                for r in rows}

    async def record_new(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, Stored]:
        """Insert new ticket rows in one transaction; return the ones that existed already.

        One round trip in the common case (``INSERT … ON CONFLICT DO NOTHING RETURNING``);
        only when some ids were recorded before are those rows read, in the same transaction.
        """
        if not rows:
            return {}
        return await self._transaction(self._record_new, list(rows))

    def _record_new(self, conn: sa.Connection,
                    rows: list[Mapping[str, Any]]) -> dict[str, Stored]:
        if self._sync is not None:
            inserted = _sqlite_record_new(conn, rows)
        else:
            statement = (self._insert().on_conflict_do_nothing(index_elements=["ticket_id"])
                         .returning(tickets.c.ticket_id))
            inserted = set(conn.execute(statement, rows).scalars())
        existing = [r["ticket_id"] for r in rows if r["ticket_id"] not in inserted]
        if not existing:
            return {}
        found = conn.execute(
            sa.select(tickets.c.ticket_id, tickets.c.published_at, tickets.c.body)
            .where(tickets.c.ticket_id.in_(existing))).all()
        return {r.ticket_id: Stored(r.ticket_id, r.published_at is not None, r.body)
                for r in found}

    async def mark_published(self, ticket_ids: Iterable[str], at: float) -> None:
        """Record that the broker confirmed these tickets."""
        ids = list(ticket_ids)
        if ids:
            await self._transaction(
                _sqlite_mark_published if self._sync is not None else _mark_published, ids, at)

    async def get(self, ticket_id: str) -> dict[str, Any] | None:
        """One ticket row, or None."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(
                sa.select(tickets).where(tickets.c.ticket_id == ticket_id))).first()
        return dict(row._mapping) if row else None

    async def update_where(self, ticket_id: str, conditions: Sequence[Any],
                           values: Mapping[str, Any]) -> bool:
        """Set ``values`` on a ticket if ``conditions`` hold; True when a row changed.

        A conditional update is how several processes agree on who does something once.
        """
        statement = tickets.update().where(tickets.c.ticket_id == ticket_id, *conditions)
        async with self.engine.begin() as conn:
            result = await conn.execute(statement.values(**values))
        return bool(result.rowcount)

    async def claim_once(self, column: str, ticket_ids: Sequence[str], at: float) -> list[str]:
        """Set ``column`` (e.g. ``breached_at``) where it is still empty; return ids that won."""
        won = []
        col = tickets.c[column]
        async with self.engine.begin() as conn:
            for ticket_id in ticket_ids:
                result = await conn.execute(
                    tickets.update().where(tickets.c.ticket_id == ticket_id, col.is_(None))
                    .values({column: at}))
                if result.rowcount:
                    won.append(ticket_id)
        return won

    def _unanswered(self) -> tuple[Any, ...]:
        return (tickets.c.responded_at.is_(None), tickets.c.respond_by.is_not(None),
                tickets.c.published_at.is_not(None), tickets.c.state != "resolved")

    async def unanswered(self, now: float, at_risk_share: float) -> list[dict[str, Any]]:
        """Published, unanswered tickets with an SLA that may need marking at ``now``.

        Only rows not yet marked at risk whose at-risk point has passed, or not yet marked
        breached whose deadline has passed, are read: the caller decides with
        :func:`triage.sla.status`; this filter just keeps a pass from reading every open
        ticket.
        """
        c = tickets.c
        due = sa.or_(
            sa.and_(c.at_risk_at.is_(None), c.sla_start + c.sla_seconds * at_risk_share <= now),
            sa.and_(c.breached_at.is_(None), c.respond_by < now))
        query = sa.select(c.ticket_id, c.category, c.sla_start, c.sla_seconds, c.at_risk_at,
                          c.breached_at).where(*self._unanswered(), due)
        async with self.engine.connect() as conn:
            return [dict(r._mapping) for r in (await conn.execute(query)).all()]

    async def oldest_unanswered(self) -> dict[str, float]:
        """The earliest SLA clock start of unanswered tickets, by category."""
        query = (sa.select(tickets.c.category, sa.func.min(tickets.c.sla_start))
                 .where(*self._unanswered()).group_by(tickets.c.category))
        async with self.engine.connect() as conn:
            return {r[0]: float(r[1]) for r in (await conn.execute(query)).all()}

    async def unescalated(self) -> list[dict[str, Any]]:
        """Breached tickets still unanswered that were not escalated yet."""
        query = sa.select(tickets.c.ticket_id, tickets.c.category, tickets.c.respond_by,
                          tickets.c.body).where(
            tickets.c.breached_at.is_not(None), tickets.c.escalated_at.is_(None),
            tickets.c.responded_at.is_(None))
        async with self.engine.connect() as conn:
            return [dict(r._mapping) for r in (await conn.execute(query)).all()]

    async def open_counts(self) -> list[tuple[str, str, int]]:
        """(category, state, count) of tickets not resolved."""
        query = (sa.select(tickets.c.category, tickets.c.state, sa.func.count())
                 .where(tickets.c.state != "resolved")
                 .group_by(tickets.c.category, tickets.c.state))
        async with self.engine.connect() as conn:
            return [(r[0], r[1], int(r[2])) for r in (await conn.execute(query)).all()]

    async def count(self) -> int:
        """Number of tickets."""
        async with self.engine.connect() as conn:
            return int((await conn.execute(sa.select(sa.func.count()).select_from(tickets)))
                       .scalar_one())

    async def reclassified(self) -> list[dict[str, Any]]:
        """Tickets an agent reclassified: labelled examples for retraining."""
        query = sa.select(tickets.c.ticket_id, tickets.c.category, tickets.c.reclassified_to,
                          tickets.c.reclassified_at, tickets.c.body).where(
            tickets.c.reclassified_to.is_not(None)).order_by(tickets.c.reclassified_at)
        async with self.engine.connect() as conn:
            return [dict(r._mapping) for r in (await conn.execute(query)).all()]

    async def list_tickets(self, *, queue: str | None = None, state: str | None = None,
                           after: tuple[float, str] | None = None,
                           limit: int = 50) -> list[dict[str, Any]]:
        """Published tickets, oldest SLA clock first, after a ``(sla_start, ticket_id)`` key."""
        query = sa.select(tickets).where(tickets.c.published_at.is_not(None))
        if queue is not None:
            query = query.where(tickets.c.queue == queue)
        if state is not None:
            query = query.where(tickets.c.state == state)
        if after is not None:
            start, tid = after
            query = query.where((tickets.c.sla_start > start)
                                | ((tickets.c.sla_start == start) & (tickets.c.ticket_id > tid)))
        query = query.order_by(tickets.c.sla_start, tickets.c.ticket_id).limit(limit)
        async with self.engine.connect() as conn:
            return [dict(r._mapping) for r in (await conn.execute(query)).all()]

    async def audit(self, *, at: float, actor: str, role: str, action: str,
                    target: str | None, outcome: str) -> None:
        """Append one entry to the audit log."""
        async with self.engine.begin() as conn:
            await conn.execute(audit.insert().values(
                at=at, actor=actor, role=role, action=action,
                target=None if target is None else target[:200], outcome=outcome))

    async def audit_entries(self, limit: int = 1000) -> list[dict[str, Any]]:
        """The most recent audit entries, oldest first."""
        query = sa.select(audit).order_by(audit.c.id.desc()).limit(limit)
        async with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in (await conn.execute(query)).all()]
        return rows[::-1]
