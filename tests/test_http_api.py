"""The HTTP API: roles, inbound messages, tickets, admin and hot reload, the OpenAPI document
and a schemathesis fuzz, against the real app, broker and store."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa

from tests.test_lifecycle import send, serving
from triage import config, registry
from triage.api import Context, build_app
from triage.broker import connect, publish_lines
from triage.config import ConfigError, Settings
from triage.events import event_body
from triage.http import decode_cursor, encode_cursor, identify, principals
from triage.openapi import document
from triage.schema import ticket_id
from triage.store import tickets

AGENT, BOB = "agent-token-alice-0001", "agent-token-bob-00002"
ADMIN = "admin-token-root-000001"
PRODUCER = "producer-token-webchat-01"
TOKENS = {"agent_tokens": f"alice:{AGENT},bob:{BOB}", "admin_tokens": f"root:{ADMIN}",
          "producer_tokens": f"webchat:{PRODUCER}"}
COMPLAINT = "the officer who came to my house was rude and dismissive, I want to complain"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def message(message_id: str, text: str = COMPLAINT, **extra: Any) -> dict[str, Any]:
    """An inbound message v1 from a web chat."""
    return {"id": message_id, "platform": "webchat", "kind": "dm", "text": text,
            "author": {"id": "visitor-" + message_id},
            "account": {"handle": "@NorthShiresPolice", "type": "force"}, **extra}


@pytest.fixture
def models_dir(tmp_path: Path, shipped_models: Path) -> Path:
    """A private copy of the promoted model, promoted with no history (admin tests change it)."""
    target = tmp_path / "models"
    version = registry.promoted(shipped_models)
    target.mkdir()
    shutil.copytree(shipped_models / version, target / version)
    (target / registry.REGISTRY).write_text(json.dumps({"promoted": version, "history": []}))
    return target


def clone(models_dir: Path, new: str, **metrics: Any) -> str:
    """A copy of the promoted model under another version name (passes the gates by default)."""
    version = registry.promoted(models_dir)
    shutil.copytree(models_dir / version, models_dir / new)
    path = models_dir / new / registry.MANIFEST
    manifest = json.loads(path.read_text())
    manifest["version"] = new
    manifest["created_at"] = "2099-01-01T00:00:00Z"
    manifest["metrics"]["test"].update({"urgent_recall": 0.99, **metrics})
    path.write_text(json.dumps(manifest))
    return new


def api_settings(settings_factory: Any, amqp_url: str, models_dir: Path,
                 **overrides: Any) -> Settings:
    settings: Settings = settings_factory(amqp_url, models_dir=models_dir,
                                          **{**TOKENS, **overrides})
    return settings


async def wait_for(predicate: Any, timeout: float = 30.0, what: str = "a condition") -> None:
    """Poll an async predicate until it is true."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def client(settings: Settings) -> AsyncIterator[tuple[Context, str, aiohttp.ClientSession]]:
    async with serving(settings) as (ctx, url), aiohttp.ClientSession() as http:
        yield ctx, url, http


async def routed(ctx: Context, ids: list[str], timeout: float = 30.0) -> None:
    """Wait until every ticket id is recorded and published."""
    assert ctx.store is not None
    store = ctx.store

    async def done() -> bool:
        known = await store.known(ids)
        return len(known) == len(set(ids)) and all(k.published for k in known.values())

    await wait_for(done, timeout, f"{len(ids)} tickets")


# --- settings and pure helpers --------------------------------------------------------------

def test_token_settings(tmp_path: Path) -> None:
    settings = config.load(**TOKENS)
    assert settings.tokens("agent") == {"alice": AGENT, "bob": BOB}
    assert settings.tokens("admin") == {"root": ADMIN}
    assert AGENT not in repr(settings) and ADMIN not in str(settings.model_dump())
    assert config.load().tokens("agent") == {}
    assert config.load(meta_app_secret="  ").meta_app_secret is None
    for bad, variable in [
        ({"agent_tokens": "alice"}, "TRIAGE_AGENT_TOKENS"),
        ({"agent_tokens": "alice:short"}, "TRIAGE_AGENT_TOKENS"),
        ({"admin_tokens": f"root:{ADMIN},root:{ADMIN}x"}, "TRIAGE_ADMIN_TOKENS"),
        ({"admin_tokens": "bad name:" + ADMIN}, "TRIAGE_ADMIN_TOKENS"),
        ({"agent_tokens": f"alice:{AGENT}", "admin_tokens": f"root:{AGENT}"},
         "TRIAGE_ADMIN_TOKENS"),
        ({"agent_tokens": f"alice:{AGENT}", "producer_tokens": f"chat:{AGENT}"},
         "TRIAGE_PRODUCER_TOKENS"),
    ]:
        with pytest.raises(ConfigError) as caught:
            config.load(**bad)
        assert variable in str(caught.value)
        assert AGENT not in str(caught.value) and ADMIN not in str(caught.value)


def test_identify_in_constant_time_by_digest() -> None:
    known = principals(config.load(**TOKENS))
    assert {(p.name, p.role) for p in known} == {("alice", "agent"), ("bob", "agent"),
                                                 ("root", "admin"), ("webchat", "producer")}
    found = identify(known, f"Bearer {BOB}")
    assert found is not None and (found.name, found.role) == ("bob", "agent")
    found = identify(known, f"bearer   {ADMIN} ")
    assert found is not None and found.role == "admin"
    for header in (None, "", "Bearer", "Bearer ", f"Basic {AGENT}", f"Bearer {AGENT}x",
                   AGENT, "Bearer ✓"):
        assert identify(known, header) is None


def test_cursor_round_trip_and_garbage() -> None:
    for start, tid in [(1795299243.123456, "0b6b1c1e-aaaa"), (0.0, ""), (1e10, "é")]:
        assert decode_cursor(encode_cursor(start, tid)) == (start, tid)
    for garbage in ("", "!!", "e30", "WzEsMiwzXQ", "WyJhIiwiYiJd", "W3RydWUsImEiXQ", "☃"):
        with pytest.raises(ValueError):
            decode_cursor(garbage)


def test_openapi_document_describes_every_route_and_nothing_else(tmp_path: Path) -> None:
    import schemathesis

    app = build_app(config.load(db_url=f"sqlite:///{tmp_path / 't.db'}"))
    served = {(r.method.lower(), r.resource.canonical) for r in app.router.routes()
              if r.method != "HEAD" and r.resource is not None}  # HEAD: implicit with GET
    doc = document()
    described = {(method, path) for path, ops in doc["paths"].items() for method in ops}
    assert served == described
    names = {r.name for r in app.router.routes() if r.name}
    ids = {op["operationId"] for ops in doc["paths"].values() for op in ops.values()}
    assert names <= ids
    schema = schemathesis.openapi.from_dict(doc)
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) == len(described)
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if op["security"]:
                for code in ("401", "403"):
                    assert code in op["responses"], (method, path, code)
            if "requestBody" in op:
                assert "400" in op["responses"] and (
                    "413" in op["responses"] or not path.startswith(("/v1/messages",
                                                                     "/v1/webhooks"))), path


def _row(i: int, queue: str, state: str, sla_start: float) -> dict[str, Any]:
    return {"ticket_id": f"id-{i:02d}", "platform": "webchat", "message_id": f"m{i}",
            "category": "enquiry", "queue": queue, "priority": 3, "review": False,
            "confidence": 0.9, "model_version": "v", "sla_seconds": 86400.0,
            "sla_start": sla_start, "respond_by": sla_start + 86400, "received_at": sla_start,
            "routed_at": sla_start, "state": state, "body": json.dumps({"message": {}})}


async def test_store_listing_and_audit_sqlite(tmp_path: Path) -> None:
    await _listing_and_audit(f"sqlite:///{tmp_path / 'store.db'}")


@pytest.mark.postgres
async def test_store_listing_and_audit_postgres(pg_url: str) -> None:
    await _listing_and_audit(pg_url)


async def _listing_and_audit(url: str) -> None:
    from triage.store import Store

    store = await Store.open(url)
    try:
        # equal clock starts are ordered by ticket id; one row is not published yet
        rows = [_row(i, "cc.a" if i % 3 else "cc.b", "claimed" if i == 4 else "routed",
                     1000.0 + (i // 2)) for i in range(12)]
        await store.record_new(rows)
        await store.mark_published([r["ticket_id"] for r in rows[:-1]], 2000.0)
        seen, after = [], None
        while True:
            page = await store.list_tickets(queue="cc.a", after=after, limit=3)
            seen += [r["ticket_id"] for r in page]
            if len(page) < 3:
                break
            after = (page[-1]["sla_start"], page[-1]["ticket_id"])
        assert seen == [f"id-{i:02d}" for i in range(11) if i % 3]
        claimed = await store.list_tickets(state="claimed")
        assert [r["ticket_id"] for r in claimed] == ["id-04"]
        assert await store.list_tickets(queue="cc.b", state="claimed") == []
        await store.audit(at=1.5, actor="alice", role="agent", action="ticket.claimed",
                          target="id-04", outcome="ok")
        await store.audit(at=2.5, actor="root", role="admin", action="model.reload",
                          target=None, outcome="refused")
        entries = await store.audit_entries()
        assert [(e["actor"], e["action"], e["target"], e["outcome"]) for e in entries] == [
            ("alice", "ticket.claimed", "id-04", "ok"),
            ("root", "model.reload", None, "refused")]
        assert entries[0]["id"] < entries[1]["id"]
    finally:
        await store.close()


# --- through the real service ---------------------------------------------------------------

pytest_broker = pytest.mark.broker


@pytest_broker
async def test_roles(amqp_url: str, settings_factory: Any, models_dir: Path,
                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    settings = api_settings(settings_factory, amqp_url, models_dir)
    newer = clone(models_dir, "99990101-000000-newer")
    async with client(settings) as (ctx, url, http):
        assert ctx.store is not None
        tid = ticket_id("webchat", "roles-1")
        # (method, path, json body, the role it needs, status for that role)
        endpoints: list[tuple[str, str, Any, str, int]] = [
            ("POST", "/v1/messages", message("roles-1"), "producer", 202),
            ("GET", "/v1/tickets", None, "agent", 200),
            ("GET", f"/v1/tickets/{tid}", None, "agent", 200),
            ("POST", f"/v1/tickets/{tid}/claim", None, "agent", 202),
            ("POST", f"/v1/tickets/{tid}/respond", None, "agent", 202),
            ("POST", f"/v1/tickets/{tid}/reclassify", {"category": "enquiry"}, "agent", 202),
            ("POST", f"/v1/tickets/{tid}/resolve", None, "agent", 202),
            ("GET", "/v1/admin/models", None, "admin", 200),
            ("POST", "/v1/admin/models/promote", {"version": newer}, "admin", 200),
            ("POST", "/v1/admin/models/reload", None, "admin", 200),
            ("POST", "/v1/admin/models/rollback", None, "admin", 200),
        ]
        tokens = {"agent": AGENT, "admin": ADMIN, "producer": PRODUCER}
        for method, path, body, role, status in endpoints:
            for headers in ({}, {"Authorization": "Bearer not-a-known-token-at-all"},
                            {"Authorization": f"Basic {tokens[role]}"}):
                async with http.request(method, url + path, json=body, headers=headers) as r:
                    assert r.status == 401, (method, path, headers)
                    assert r.headers["WWW-Authenticate"] == "Bearer"
                    assert (await r.json())["error"] == "unauthorized"
            for other, token in tokens.items():
                if other == role:
                    continue
                async with http.request(method, url + path, json=body,
                                        headers=bearer(token)) as r:
                    assert r.status == 403, (method, path, other)
                    assert (await r.json())["error"] == "forbidden"
            async with http.request(method, url + path, json=body,
                                    headers=bearer(tokens[role])) as r:
                assert r.status == status, (method, path, await r.text())
            if path == "/v1/messages":
                await routed(ctx, [tid])
        async with http.get(url + "/v1/tickets", headers=bearer(BOB)) as r:
            assert r.status == 200  # every agent token works, and is named in the audit log
        entries = await ctx.store.audit_entries()
    assert ctx.models is not None and ctx.models.model.version == newer  # reloaded to it
    by_outcome: dict[str, set[tuple[str, str, str]]] = {}
    for e in entries:
        by_outcome.setdefault(e["outcome"], set()).add((e["actor"], e["role"], e["action"]))
        assert e["at"] > time.time() - 120
    assert by_outcome["ok"] == {
        ("alice", "agent", "ticket.list"), ("alice", "agent", "ticket.view"),
        ("alice", "agent", "ticket.claimed"), ("alice", "agent", "ticket.responded"),
        ("alice", "agent", "ticket.reclassified"), ("alice", "agent", "ticket.resolved"),
        ("root", "admin", "model.list"), ("root", "admin", "model.promote"),
        ("root", "admin", "model.reload"), ("root", "admin", "model.rollback"),
        ("bob", "agent", "ticket.list")}
    forbidden = by_outcome["forbidden"]
    assert ("root", "admin", "ticket.claimed") in forbidden
    assert ("webchat", "producer", "model.reload") in forbidden
    assert ("alice", "agent", "model.promote") in forbidden
    assert {e["target"] for e in entries if e["action"] == "ticket.claimed"} == {tid, None}
    assert {e["target"] for e in entries
            if e["action"] == "model.promote" and e["outcome"] == "ok"} == {newer}
    assert "audit: actor=root role=admin action=model.reload" in caplog.text
    assert "rude and dismissive" not in caplog.text
    for token in (AGENT, BOB, ADMIN, PRODUCER):
        assert token not in caplog.text


@pytest_broker
async def test_post_messages(amqp_url: str, settings_factory: Any, models_dir: Path) -> None:
    settings = api_settings(settings_factory, amqp_url, models_dir, max_body_bytes=8192)
    async with client(settings) as (ctx, url, http):
        assert ctx.store is not None
        post = url + "/v1/messages"
        auth = bearer(PRODUCER)
        async with http.post(post, json=message("one"), headers=auth) as r:
            assert r.status == 202
            assert await r.json() == {"accepted": 1, "ticket_ids": [ticket_id("webchat", "one")]}
        await routed(ctx, [ticket_id("webchat", "one")])
        batch = [message(f"b{i}", "someone stole my bike from the station yesterday")
                 for i in range(5)] + [message("one")]  # a re-sent message in the batch
        async with http.post(post, json=batch, headers=auth) as r:
            assert r.status == 202 and (await r.json())["accepted"] == 6
        await routed(ctx, [ticket_id("webchat", i) for i in ("one", "b0", "b1", "b2", "b3",
                                                               "b4")])
        refused: list[tuple[Any, int, str, str]] = [
            ([message("ok"), {**message("bad"), "kind": "tweet"}], 400, "schema_invalid",
             "[1] kind"),
            ({**message("empty"), "text": "   "}, 400, "empty_text", "text is empty"),
            ({**message("v2"), "version": 2}, 400, "unknown_schema_version", "version"),
            ([], 400, "empty_batch", "no messages"),
            ([message("ok"), "text"], 400, "not_json", "[1] expected a JSON object"),
            ([message(str(i)) for i in range(501)], 413, "too_large", "8192"),
            ({**message("big"), "text": "x" * 9000}, 413, "too_large", "8192"),
        ]
        for body, status, error, detail in refused:
            async with http.post(post, json=body, headers=auth) as r:
                answer = await r.json()
                assert (r.status, answer["error"]) == (status, error), answer
                assert detail in answer["detail"]
        async with http.post(post, data=b"{nope", headers=auth) as r:
            assert r.status == 400 and (await r.json())["error"] == "not_json"
        await asyncio.sleep(0.5)
        assert await ctx.store.count() == 6
        assert ctx.metrics.http_messages.labels("producer")._value.get() == 7
        assert ctx.metrics.duplicates_suppressed._value.get() == 1


@pytest_broker
async def test_ticket_api_matches_the_amqp_path(amqp_url: str, settings_factory: Any,
                                                models_dir: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    settings = api_settings(settings_factory, amqp_url, models_dir)
    base = datetime.now(UTC) - timedelta(minutes=30)
    ids = [f"t{i}" for i in range(5)]
    bodies = [message(mid, created_at=(base + timedelta(seconds=i)).isoformat())
              for i, mid in enumerate(reversed(ids))]  # t4 is the oldest
    async with client(settings) as (ctx, url, http):
        assert ctx.store is not None
        async with http.post(url + "/v1/messages", json=bodies, headers=bearer(PRODUCER)) as r:
            assert r.status == 202
        tids = [ticket_id("webchat", i) for i in ids]
        await routed(ctx, tids)
        queue = (await ctx.store.get(tids[0]) or {})["queue"]
        category = (await ctx.store.get(tids[0]) or {})["category"]

        # paged, oldest first
        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            params = {"queue": queue, "limit": "2", **({"cursor": cursor} if cursor else {})}
            async with http.get(url + "/v1/tickets", params=params, headers=bearer(AGENT)) as r:
                assert r.status == 200, await r.text()
                page = await r.json()
            pages += 1
            seen += [t["message"]["id"] for t in page["tickets"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == list(reversed(ids)) and pages == 3
        async with http.get(url + f"/v1/tickets/{tids[0]}", headers=bearer(AGENT)) as r:
            ticket = await r.json()
        assert ticket["message"]["text"] == COMPLAINT and ticket["state"] == "routed"
        assert ticket["queue"] == queue and ticket["respond_by"] is not None

        # t0 answered over AMQP as a contact centre does; t1 through the API
        now = datetime.now(UTC)
        await send(settings, settings.events_exchange, [
            event_body(tids[0], "claimed", now, event_id="amqp-1", agent="alice"),
            event_body(tids[0], "responded", now, event_id="amqp-2", agent="alice")])
        for action in ("claim", "respond"):
            async with http.post(url + f"/v1/tickets/{tids[1]}/{action}",
                                 headers=bearer(AGENT)) as r:
                assert r.status == 202
                accepted = await r.json()
                assert accepted["agent"] == "alice" and accepted["ticket_id"] == tids[1]
        async with http.post(url + f"/v1/tickets/{tids[2]}/reclassify",
                             json={"category": "urgent"}, headers=bearer(BOB)) as r:
            assert r.status == 202

        async def applied() -> bool:
            rows = [await ctx.store.get(t) for t in tids[:3]]  # type: ignore[union-attr]
            return bool(rows[0] and rows[0]["state"] == "responded" and rows[1]
                        and rows[1]["state"] == "responded" and rows[2]
                        and rows[2]["category"] == "urgent")

        await wait_for(applied, what="events applied")
        amqp_row, http_row = await ctx.store.get(tids[0]), await ctx.store.get(tids[1])
        assert amqp_row is not None and http_row is not None
        for column in ("state", "agent", "sla_seconds", "category"):
            assert amqp_row[column] == http_row[column], column
        assert (amqp_row["respond_by"] - amqp_row["sla_start"]
                == http_row["respond_by"] - http_row["sla_start"])
        for row in (amqp_row, http_row):
            assert row["claimed_at"] is not None and row["responded_at"] is not None
        metrics = ctx.metrics
        assert metrics.sla_met.labels(category, "true")._value.get() == 2
        first = [s for s in next(iter(metrics.first_response.collect())).samples
                 if s.name.endswith("_count") and s.labels["category"] == category]
        assert first[0].value == 2
        assert metrics.events_applied.labels("responded", "applied")._value.get() == 2

        async with http.post(url + f"/v1/tickets/{tids[1]}/resolve",
                             headers=bearer(AGENT)) as r:
            assert r.status == 202

        async def resolved() -> bool:
            return ((await ctx.store.get(tids[1])) or {}).get("state") == "resolved"  # type: ignore[union-attr]

        await wait_for(resolved)
        for state, expected in (("responded", {tids[0]}), ("resolved", {tids[1]}),
                                ("routed", set(tids[2:]))):
            async with http.get(url + "/v1/tickets", params={"queue": queue, "state": state},
                                headers=bearer(AGENT)) as r:
                assert {t["ticket_id"] for t in (await r.json())["tickets"]} == expected
        # reclassified to urgent: the urgent SLA from the original clock start -> breached
        urgent_row = await ctx.store.get(tids[2])
        assert urgent_row is not None and urgent_row["reclassified_to"] == "urgent"
        assert urgent_row["respond_by"] < time.time()

        # refusals
        for method, path, body, status, error in [
            ("GET", "/v1/tickets/no-such-ticket", None, 404, "unknown_ticket"),
            ("POST", "/v1/tickets/no-such-ticket/claim", None, 404, "unknown_ticket"),
            ("GET", "/v1/tickets/bad%20id", None, 400, "invalid_ticket_id"),
            ("POST", f"/v1/tickets/{tids[3]}/reclassify", {"category": "spam"}, 400,
             "invalid_category"),
            ("POST", f"/v1/tickets/{tids[3]}/reclassify", None, 400, "not_json"),
            ("GET", "/v1/tickets?state=open", None, 400, "invalid_state"),
            ("GET", "/v1/tickets?queue=cc.nowhere", None, 400, "unknown_queue"),
            ("GET", "/v1/tickets?limit=0", None, 400, "invalid_limit"),
            ("GET", "/v1/tickets?limit=ten", None, 400, "invalid_limit"),
            ("GET", "/v1/tickets?cursor=abc", None, 400, "invalid_cursor"),
        ]:
            async with http.request(method, url + path, json=body, headers=bearer(AGENT)) as r:
                assert (r.status, (await r.json())["error"]) == (status, error), path
        entries = await ctx.store.audit_entries()
    assert ("bob", "ticket.reclassified", tids[2], "ok") in {
        (e["actor"], e["action"], e["target"], e["outcome"]) for e in entries}
    assert ("alice", "ticket.view", "no-such-ticket", "not_found") in {
        (e["actor"], e["action"], e["target"], e["outcome"]) for e in entries}
    assert COMPLAINT not in caplog.text
    assert not any(COMPLAINT in str(e.values()) for e in entries)


@pytest_broker
async def test_admin_models(amqp_url: str, settings_factory: Any, models_dir: Path) -> None:
    settings = api_settings(settings_factory, amqp_url, models_dir)
    original = registry.promoted(models_dir)
    weak = clone(models_dir, "99990101-000000-weak", urgent_recall=0.5)
    good = clone(models_dir, "99990101-000001-good")
    tampered = clone(models_dir, "99990101-000002-tampered")
    with (models_dir / tampered / registry.ARTEFACT).open("ab") as handle:
        handle.write(b"\0")
    auth = bearer(ADMIN)
    async with client(settings) as (ctx, url, http):
        admin = url + "/v1/admin/models"
        async with http.get(admin, headers=auth) as r:
            listing = await r.json()
        assert listing["promoted"] == listing["serving"] == original
        assert {v["version"] for v in listing["versions"]} == {original, weak, good, tampered}
        for version, reason in ((weak, "urgent recall"), (tampered, "does not match"),
                                ("no-such-model", "no model version"),
                                (original, "already the promoted model")):
            async with http.post(admin + "/promote", json={"version": version},
                                 headers=auth) as r:
                answer = await r.json()
                assert r.status == 409 and reason in answer["detail"], answer
        body: Any
        for body in ({"version": "../etc"}, {}, [], {"version": 7}):
            async with http.post(admin + "/promote", json=body, headers=auth) as r:
                assert r.status == 400 and (await r.json())["error"] == "invalid_version"
        async with http.post(admin + "/rollback", headers=auth) as r:
            assert r.status == 409 and "nothing to roll back" in (await r.json())["detail"]
        async with http.post(admin + "/promote", json={"version": good}, headers=auth) as r:
            assert r.status == 200
            assert await r.json() == {"promoted": good, "history": [original],
                                      "serving": original}
        assert registry.promoted(models_dir) == good
        async with http.post(admin + "/reload", headers=auth) as r:
            assert r.status == 200 and await r.json() == {"serving": good,
                                                         "previous": original}
        assert ctx.worker is not None and ctx.worker.models.model.version == good
        async with http.post(admin + "/rollback", headers=auth) as r:
            assert r.status == 200 and (await r.json())["promoted"] == original
        # the promoted artefact is tampered with on disk: reload refuses it, the old one serves
        with (models_dir / original / registry.ARTEFACT).open("ab") as handle:
            handle.write(b"\0")
        async with http.post(admin + "/reload", headers=auth) as r:
            answer = await r.json()
            assert r.status == 409 and "does not match the manifest" in answer["detail"]
            assert f"{good} keeps serving" in answer["detail"]
        assert ctx.worker.models.model.version == good
        await send(settings, settings.inbound_exchange, [json.dumps(message("after")).encode()])
        await routed(ctx, [ticket_id("webchat", "after")])
        assert ctx.store is not None
        row = await ctx.store.get(ticket_id("webchat", "after"))
        assert row is not None and row["model_version"] == good
        async with http.get(url + "/metrics") as r:
            exposition = await r.text()
        async with http.get(url + "/readyz") as r:
            assert r.status == 200
    assert 'triage_model_reloads_total{outcome="ok"} 1.0' in exposition
    assert 'triage_model_reloads_total{outcome="refused"} 1.0' in exposition
    assert f'triage_model_info{{version="{good}"}} 1.0' in exposition


@pytest_broker
@pytest.mark.slow
async def test_hot_reload_while_messages_flow_loses_nothing(
        amqp_url: str, settings_factory: Any, models_dir: Path) -> None:
    settings = api_settings(settings_factory, amqp_url, models_dir)
    old = registry.promoted(models_dir)
    new = clone(models_dir, "99990101-000000-hot")
    texts = [COMPLAINT, "someone stole my bike from the station yesterday",
             "great photo of the police horses today", "is the bypass closed tonight?",
             "there is a man with a knife outside the shop right now"]
    total = 2000
    bodies = [json.dumps(message(f"hot-{i}", f"{texts[i % 5]} #{i}")).encode()
              for i in range(total)]
    async with client(settings) as (ctx, url, http):
        assert ctx.store is not None
        store = ctx.store
        connection = await connect(settings)
        try:
            channel = await connection.channel(publisher_confirms=True)
            first = asyncio.create_task(publish_lines(
                channel, settings.inbound_exchange, bodies[:1200], 30, window=100))

            async def flowing() -> bool:
                return await store.count() >= 200

            await wait_for(flowing, 60, "the first tickets")
            assert await store.count() < 1200  # mid-flow
            async with http.post(url + "/v1/admin/models/promote", json={"version": new},
                                 headers=bearer(ADMIN)) as r:
                assert r.status == 200
            async with http.post(url + "/v1/admin/models/reload",
                                 headers=bearer(ADMIN)) as r:
                assert r.status == 200, await r.text()
            await first
            await publish_lines(channel, settings.inbound_exchange, bodies[1200:], 30,
                                window=100)
        finally:
            await connection.close()

        async def all_published() -> bool:
            async with store.engine.connect() as conn:
                return int((await conn.execute(sa.select(sa.func.count()).select_from(
                    tickets).where(tickets.c.published_at.is_not(None)))).scalar_one()) == total

        await wait_for(all_published, 120, "every ticket")
        async with store.engine.connect() as conn:
            versions: dict[str, int] = dict((await conn.execute(sa.select(
                tickets.c.model_version, sa.func.count()).group_by(
                tickets.c.model_version))).all())
            message_ids = (await conn.execute(sa.select(tickets.c.message_id))).scalars().all()
        async with http.get(url + "/metrics") as r:
            exposition = await r.text()
        inbound_left = (await ctx.worker.topology.inbound_queue.declare()).message_count  # type: ignore[union-attr]
    assert sorted(message_ids) == sorted(f"hot-{i}" for i in range(total))  # once each
    assert set(versions) == {old, new} and versions[new] >= total - 1200
    assert 'triage_model_reloads_total{outcome="ok"} 1.0' in exposition
    routed_total = sum(float(line.rsplit(" ", 1)[1]) for line in exposition.splitlines()
                       if line.startswith("triage_tickets_routed_total{"))
    assert routed_total == total
    assert "triage_messages_dead_lettered_total" in exposition
    assert all(line.endswith(" 0.0") for line in exposition.splitlines()
               if line.startswith("triage_messages_dead_lettered_total{"))
    assert inbound_left == 0


@pytest_broker
@pytest.mark.slow
async def test_schemathesis_finds_no_server_error(amqp_url: str, settings_factory: Any,
                                                  models_dir: Path, tmp_path: Path) -> None:
    cli = Path(sys.executable).parent / "schemathesis"
    if not cli.exists():
        pytest.fail("schemathesis is not installed: pip install -e '.[dev]'")
    settings = api_settings(settings_factory, amqp_url, models_dir,
                            x_consumer_secret="x-secret-for-fuzzing",
                            meta_app_secret="meta-secret-for-fuzzing",
                            meta_verify_token="meta-verify-for-fuzzing")
    clone(models_dir, "99990101-000000-fuzz")
    # each role's routes with its own token, the unauthenticated ones without; the ticket
    # routes also run stateful (links from listTickets) so real ticket ids reach them
    runs = [("^/v1/tickets", AGENT, "coverage,fuzzing,stateful"),
            ("^/v1/admin", ADMIN, "coverage,fuzzing"),
            ("^/v1/messages", PRODUCER, "coverage,fuzzing"),
            ("^/(v1/webhooks|healthz|readyz|metrics|openapi)", None, "coverage,fuzzing")]
    async with client(settings) as (ctx, url, http):
        seed = [message(f"fuzz-{i}") for i in range(3)]
        async with http.post(url + "/v1/messages", json=seed, headers=bearer(PRODUCER)) as r:
            assert r.status == 202
        await routed(ctx, [ticket_id("webchat", m["id"]) for m in seed])
        started = time.monotonic()
        for regex, token, phases in runs:
            command = [str(cli), "run", url + "/openapi.json", "--url", url,
                       "--checks", "not_a_server_error,status_code_conformance,"
                       "content_type_conformance,response_schema_conformance",
                       "--max-examples", os.environ.get("TRIAGE_FUZZ_EXAMPLES", "15"),
                       "--phases", phases, "--include-path-regex", regex,
                       "--generation-database", "none", "--no-color", "--workers", "1",
                       "--request-timeout", "20", "--suppress-health-check", "all"]
            if token:
                command += ["--header", f"Authorization: Bearer {token}"]
            process = await asyncio.create_subprocess_exec(
                *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                cwd=tmp_path)
            output, _ = await asyncio.wait_for(process.communicate(), 120)
            text = output.decode(errors="replace")
            assert process.returncode == 0, f"schemathesis on {regex}:\n{text[-6000:]}"
            assert "generated," in text and " 0 generated" not in text, text[-2000:]
        assert time.monotonic() - started < 60
