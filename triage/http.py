"""The HTTP front door: platform webhooks, inbound messages, the ticket API and the admin API.

:func:`add_routes` (called by :func:`triage.api.build_app`) registers every route under its
OpenAPI ``operationId`` and two middlewares: errors (every error is JSON ``{error, detail}``,
and every answer is counted by route and status) and auth (``Authorization: Bearer <token>``;
each token has one role, ``agent``, ``admin`` or ``producer``; no or unknown token 401, another
role 403). Webhooks authenticate by the platform's HMAC signature of the raw body instead.

Everything that publishes waits for the broker's confirm before answering. Ticket actions
publish a lifecycle event v1 to ``triage.events``, exactly what a contact centre publishes over
AMQP, so the events consumer applies both paths alike and SLA figures do not depend on the path.
Every ticket and admin action is written to the audit log (who, role, what, target, outcome,
when), never message text; ticket JSON includes the message because agents need it, and it is
never logged.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from pydantic import ValidationError

from triage import events, openapi, registry, webhooks
from triage.api import CTX, Context, load_models
from triage.broker import persistent, publish_confirmed
from triage.config import CATEGORIES, HEADER_SCHEMA, INBOUND_SCHEMA_VERSION, ROLES, Settings
from triage.consume import ModelRef
from triage.evaluate import rescorer
from triage.safety import load_rules
from triage.schema import InboundMessage, Rejection, decode, encode

log = logging.getLogger("triage.http")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_TICKET_ID = re.compile(openapi.TICKET_ID_PATTERN)
_QUEUE = re.compile(openapi.QUEUE_PATTERN)
_VERSION = re.compile(openapi.VERSION_PATTERN)
#: Texts a freshly loaded model must classify before it may serve.
SMOKE_TEXTS = ("someone is breaking into my neighbour's house right now",
               "how do I get a copy of my crime reference number?")


# --- errors and pure helpers ----------------------------------------------------------------

class ApiError(Exception):
    """An answer other than success: HTTP status, a short code and a reason (never content)."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail


def error_response(status: int, error: str, detail: str) -> web.Response:
    """The JSON body of every error."""
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return web.json_response({"error": error, "detail": detail}, status=status, headers=headers)


@dataclass(frozen=True)
class Principal:
    """Who presented a token: its name (for the audit log) and its role."""

    name: str
    role: str
    digest: bytes


def principals(settings: Settings) -> tuple[Principal, ...]:
    """Every configured token as a principal (only the token's sha256 is kept)."""
    return tuple(Principal(name, role, hashlib.sha256(token.encode()).digest())
                 for role in ROLES for name, token in settings.tokens(role).items())


def identify(known: Sequence[Principal], authorization: str | None) -> Principal | None:
    """The principal of an ``Authorization: Bearer`` header, compared in constant time."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    digest = hashlib.sha256(token.strip().encode("utf-8", "replace")).digest()
    found = None
    for principal in known:  # no early exit: the time taken does not depend on which matched
        if hmac.compare_digest(principal.digest, digest):
            found = principal
    return found


def describe(exc: ValidationError, prefix: str = "") -> str:
    """Field and problem of a validation error, never the input."""
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{prefix}{loc}: {err['msg']}")
    return "; ".join(parts)


def parse_json(body: bytes) -> Any:
    """The JSON value of a body, or :class:`ApiError` 400."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "not_json",
                       f"not valid JSON: {str(exc.args[0]).split(':')[0]}") from None


def encode_cursor(sla_start: float, ticket_id: str) -> str:
    """An opaque keyset cursor."""
    return base64.urlsafe_b64encode(orjson.dumps([sla_start, ticket_id])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """The ``(sla_start, ticket_id)`` of a cursor; ValueError when it is not one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = orjson.loads(raw)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise ValueError("not a cursor from this API") from None
    if (not isinstance(value, list) or len(value) != 2 or isinstance(value[0], bool)
            or not isinstance(value[0], int | float) or not isinstance(value[1], str)):
        raise ValueError("not a cursor from this API")
    return float(value[0]), value[1]


def _iso(timestamp: float | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat()


def ticket_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """A ticket row as the API shows it: state, SLA times and the message."""
    body = orjson.loads(row["body"])
    view: dict[str, Any] = {
        "ticket_id": row["ticket_id"], "queue": row["queue"], "category": row["category"],
        "original_category": body.get("category", row["category"]),
        "priority": row["priority"], "review": bool(row["review"]),
        "confidence": row["confidence"], "reasons": body.get("reasons", []),
        "model_version": row["model_version"], "state": row["state"],
        "sla_seconds": row["sla_seconds"], "reclassified_to": row["reclassified_to"],
        "agent": row["agent"], "message": body.get("message", {}),
    }
    for column in ("sla_start", "received_at", "routed_at", "published_at", "respond_by",
                   "claimed_at", "responded_at", "resolved_at", "at_risk_at", "breached_at",
                   "escalated_at", "reclassified_at"):
        view[column] = _iso(row[column])
    return view


def check_models(settings: Settings) -> ModelRef:
    """Load and verify the promoted model, and make sure it classifies; raise if not."""
    models = load_models(settings)
    predictions = models.model.predict(list(SMOKE_TEXTS))
    for prediction in predictions:
        total = sum(prediction.probabilities.values())
        if set(prediction.probabilities) != set(CATEGORIES) or abs(total - 1.0) > 1e-3:
            raise registry.ModelError(f"model {models.model.version}: predictions are not a "
                                      "distribution over the five categories; refusing it")
    return models


# --- plumbing ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Endpoint:
    """One route: method, path, OpenAPI operationId, handler, and the role it needs."""

    method: str
    path: str
    name: str
    handler: Handler
    role: str | None = None
    action: str | None = None


@dataclass
class HttpState:
    """What the HTTP layer keeps: known principals and endpoints by route name."""

    principals: tuple[Principal, ...]
    endpoints: dict[str, Endpoint]
    document: dict[str, Any]


HTTP = web.AppKey("http", HttpState)
PRINCIPAL = web.RequestKey("principal", Principal)


def _ctx(request: web.Request) -> Context:
    return request.app[CTX]


def _route_label(request: web.Request) -> str:
    info = request.match_info
    if info.http_exception is not None:
        return "unmatched"
    route = info.route
    if route.name:
        return route.name
    return str(getattr(route.resource, "canonical", "unnamed"))


async def audit(ctx: Context, principal: Principal, action: str, target: str | None,
                outcome: str) -> None:
    """Record an action in the audit log (and the log), never with message text."""
    log.info("audit: actor=%s role=%s action=%s target=%s outcome=%s", principal.name,
             principal.role, action, target, outcome)
    if ctx.store is None:
        return
    try:
        await ctx.store.audit(at=time.time(), actor=principal.name, role=principal.role,
                              action=action, target=target, outcome=outcome)
    except Exception as exc:
        ctx.metrics.store_errors.labels("audit").inc()
        log.error("writing the audit log failed (%s)", type(exc).__name__)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error as JSON ``{error, detail}``; count every answer by route and status."""
    route = _route_label(request)
    try:
        response = await handler(request)
    except ApiError as exc:
        response = error_response(exc.status, exc.error, exc.detail)
    except web.HTTPRequestEntityTooLarge:
        limit = _ctx(request).settings.max_body_bytes
        response = error_response(413, "too_large", f"the body is larger than {limit} bytes")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_response(exc.status, exc.reason.lower().replace(" ", "_"),
                                  exc.reason)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
    except Exception as exc:
        log.error("unhandled error in %s (%s)", route, type(exc).__name__)
        log.debug("unhandled error", exc_info=True)
        response = error_response(500, "internal", "internal error")
    _ctx(request).metrics.http_requests.labels(route, str(response.status)).inc()
    return response


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bearer token -> principal; 401 without a known token, 403 for the wrong role."""
    state = request.app[HTTP]
    name = None if request.match_info.http_exception else request.match_info.route.name
    endpoint = state.endpoints.get(name) if name else None
    if endpoint is None or endpoint.role is None:
        return await handler(request)
    principal = identify(state.principals, request.headers.get("Authorization"))
    if principal is None:
        raise ApiError(401, "unauthorized", "a valid bearer token is required")
    if principal.role != endpoint.role:
        await audit(_ctx(request), principal, endpoint.action or endpoint.name, None,
                    "forbidden")
        raise ApiError(403, "forbidden", f"this needs a token of the {endpoint.role} role")
    request[PRINCIPAL] = principal
    return await handler(request)


async def read_body(request: web.Request) -> bytes:
    """The raw body, refused with 413 over ``TRIAGE_MAX_BODY_BYTES`` (before reading it all)."""
    limit = _ctx(request).settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "too_large", f"the body is larger than {limit} bytes")
    return await request.read()  # aiohttp stops at client_max_size (413) when unannounced


async def publish(ctx: Context, exchange_name: str,
                  items: Sequence[tuple[bytes, str, str]]) -> None:
    """Publish ``(body, message_id, schema)`` items persistent, mandatory, with confirms.

    Answers nothing until every one is confirmed; any failure is :class:`ApiError` 503 (the
    caller retries; a message published twice still yields one ticket).
    """
    channel = ctx.http_channel
    if channel is None or channel.is_closed:
        raise ApiError(503, "broker_unavailable", "the broker is not connected; retry later")
    exchange = await channel.get_exchange(exchange_name, ensure=False)
    timeout = ctx.settings.publish_timeout_seconds
    results = await asyncio.gather(*(
        publish_confirmed(exchange, persistent(body, message_id=message_id,
                                               headers={HEADER_SCHEMA: schema}), "", timeout)
        for body, message_id, schema in items), return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        ctx.metrics.publish_failures.labels(
            "timeout" if isinstance(failed[0], TimeoutError) else "not_confirmed").inc(
            len(failed))
        log.warning("%d of %d HTTP publishes to %s not confirmed (%s)", len(failed), len(items),
                    exchange_name, type(failed[0]).__name__)
        raise ApiError(503, "not_confirmed",
                       f"{len(failed)} of {len(items)} were not confirmed by the broker; retry")


async def publish_messages(ctx: Context, source: str,
                           messages: Sequence[InboundMessage]) -> list[str]:
    """Publish inbound messages to the inbound exchange; their ticket ids."""
    schema = f"inbound/{INBOUND_SCHEMA_VERSION}"
    await publish(ctx, ctx.settings.inbound_exchange,
                  [(encode(m), m.ticket_id, schema) for m in messages])
    ctx.metrics.http_messages.labels(source).inc(len(messages))
    return [m.ticket_id for m in messages]


# --- webhooks ---------------------------------------------------------------------------------

def _secret(value: Any, platform: str, variable: str) -> str:
    if value is None:
        raise ApiError(404, "not_configured", f"the {platform} webhook is not configured "
                       f"(set {variable})")
    secret: str = value.get_secret_value()
    return secret


async def x_crc(request: web.Request) -> web.Response:
    """X's CRC check."""
    secret = _secret(_ctx(request).settings.x_consumer_secret, "X", "TRIAGE_X_CONSUMER_SECRET")
    token = request.query.get("crc_token")
    if not token:
        raise ApiError(400, "missing_crc_token", "crc_token: required")
    return web.json_response({"response_token": webhooks.x_crc_response(secret, token)})


async def meta_verify(request: web.Request) -> web.Response:
    """Meta's subscription verification."""
    settings = _ctx(request).settings
    _secret(settings.meta_app_secret, "Meta", "TRIAGE_META_APP_SECRET")
    verify = _secret(settings.meta_verify_token, "Meta", "TRIAGE_META_VERIFY_TOKEN")
    challenge = webhooks.meta_challenge(request.query, verify)
    if challenge is None:
        raise ApiError(403, "verification_failed",
                       "hub.mode must be subscribe and hub.verify_token the configured one")
    return web.Response(text=challenge, content_type="text/plain",
                        headers={"X-Content-Type-Options": "nosniff"})


async def _webhook(request: web.Request, source: str, secret: str,
                   verify: Callable[[str, bytes, str | None], bool], header: str,
                   mapper: Callable[[Any, datetime], webhooks.Mapped]) -> web.Response:
    ctx = _ctx(request)
    body = await read_body(request)
    if not verify(secret, body, request.headers.get(header)):
        log.warning("%s webhook: signature check failed; delivery refused", source)
        raise ApiError(401, "bad_signature", f"{header} is missing or does not match the body")
    payload = parse_json(body)
    try:
        mapped = mapper(payload, datetime.now(UTC))
    except webhooks.WebhookError as exc:
        raise ApiError(400, "malformed", str(exc)) from None
    messages = []
    for i, data in enumerate(mapped.messages):
        try:
            messages.append(InboundMessage.model_validate(data))
        except ValidationError as exc:
            raise ApiError(400, "malformed", describe(exc, f"message {i}: ")) from None
    if messages:
        await publish_messages(ctx, source, messages)
    log.debug("%s webhook: %d messages published, %d events ignored", source, len(messages),
              mapped.ignored)
    return web.json_response({"accepted": len(messages), "ignored": mapped.ignored})


async def x_webhook(request: web.Request) -> web.Response:
    """X Account Activity delivery."""
    secret = _secret(_ctx(request).settings.x_consumer_secret, "X", "TRIAGE_X_CONSUMER_SECRET")
    return await _webhook(request, "x", secret, webhooks.verify_x,
                          webhooks.X_SIGNATURE_HEADER, webhooks.map_x)


async def meta_webhook(request: web.Request) -> web.Response:
    """Meta (Facebook page, Instagram) delivery."""
    secret = _secret(_ctx(request).settings.meta_app_secret, "Meta", "TRIAGE_META_APP_SECRET")
    return await _webhook(request, "meta", secret, webhooks.verify_meta,
                          webhooks.META_SIGNATURE_HEADER, webhooks.map_meta)


# --- producers ----------------------------------------------------------------------------------

async def post_messages(request: web.Request) -> web.Response:
    """One inbound message v1 or a JSON array of them; all or nothing."""
    ctx = _ctx(request)
    data = parse_json(await read_body(request))
    batch = isinstance(data, list)
    items = data if batch else [data]
    if not items:
        raise ApiError(400, "empty_batch", "the batch has no messages")
    if len(items) > openapi.MAX_BATCH:
        raise ApiError(400, "batch_too_large",
                       f"{len(items)} messages; a batch holds at most {openapi.MAX_BATCH}")
    received = datetime.now(UTC)
    messages = []
    for i, item in enumerate(items):
        where = f"[{i}] " if batch else ""
        if not isinstance(item, dict):
            raise ApiError(400, "not_json", f"{where}expected a JSON object")
        result = decode(orjson.dumps(item), max_bytes=ctx.settings.max_body_bytes,
                        received_at=received)
        if isinstance(result, Rejection):
            raise ApiError(400, result.reason, where + result.detail)
        messages.append(result)
    ticket_ids = await publish_messages(ctx, "producer", messages)
    return web.json_response({"accepted": len(messages), "ticket_ids": ticket_ids}, status=202)


# --- tickets ------------------------------------------------------------------------------------

def _ticket_id(request: web.Request) -> str:
    tid = request.match_info["ticket_id"]
    if not _TICKET_ID.fullmatch(tid):
        raise ApiError(400, "invalid_ticket_id", "ticket_id: not a ticket id")
    return tid


async def list_tickets(request: web.Request) -> web.Response:
    """Published tickets by queue and state, oldest first, paged by cursor."""
    ctx = _ctx(request)
    assert ctx.store is not None
    query = request.query
    queue, state = query.get("queue"), query.get("state")
    if queue is not None and (not _QUEUE.fullmatch(queue)
                              or queue not in ctx.settings.ticket_queues):
        raise ApiError(400, "unknown_queue", "queue: not one of "
                       + ", ".join(ctx.settings.ticket_queues))
    if state is not None and state not in openapi.STATES:
        raise ApiError(400, "invalid_state", "state: not one of " + ", ".join(openapi.STATES))
    try:
        limit = int(query.get("limit", "50"))
    except ValueError:
        raise ApiError(400, "invalid_limit", "limit: not an integer") from None
    if not 1 <= limit <= 200:
        raise ApiError(400, "invalid_limit", "limit: must be from 1 to 200")
    after = None
    if "cursor" in query:
        try:
            after = decode_cursor(query["cursor"])
        except ValueError as exc:
            raise ApiError(400, "invalid_cursor", f"cursor: {exc}") from None
    rows = await ctx.store.list_tickets(queue=queue, state=state, after=after, limit=limit + 1)
    page = rows[:limit]
    cursor = (encode_cursor(page[-1]["sla_start"], page[-1]["ticket_id"])
              if len(rows) > limit else None)
    await audit(ctx, request[PRINCIPAL], "ticket.list", f"{queue or '*'}/{state or '*'}", "ok")
    return web.json_response({"tickets": [ticket_view(r) for r in page], "next_cursor": cursor})


async def get_ticket(request: web.Request) -> web.Response:
    """One ticket with its message."""
    ctx = _ctx(request)
    assert ctx.store is not None
    tid = _ticket_id(request)
    row = await ctx.store.get(tid)
    await audit(ctx, request[PRINCIPAL], "ticket.view", tid, "ok" if row else "not_found")
    if row is None:
        raise ApiError(404, "unknown_ticket", "no ticket with that ticket_id")
    return web.json_response(ticket_view(row))


async def _ticket_event(request: web.Request, event_type: str) -> web.Response:
    ctx = _ctx(request)
    assert ctx.store is not None
    principal = request[PRINCIPAL]
    action = f"ticket.{event_type}"
    tid = _ticket_id(request)
    category = None
    if event_type == "reclassified":
        data = parse_json(await read_body(request))
        category = data.get("category") if isinstance(data, dict) else None
        if category not in CATEGORIES:
            await audit(ctx, principal, action, tid, "invalid")
            raise ApiError(400, "invalid_category",
                           "category: required, one of " + ", ".join(CATEGORIES))
    if await ctx.store.get(tid) is None:
        await audit(ctx, principal, action, tid, "not_found")
        raise ApiError(404, "unknown_ticket", "no ticket with that ticket_id")
    at = events.now_utc(time.time())
    event_id = f"http-{uuid.uuid4()}"
    body = events.event_body(tid, event_type, at, event_id=event_id, agent=principal.name,
                             category=category)
    try:
        await publish(ctx, ctx.settings.events_exchange, [(body, event_id, "event/1")])
    except ApiError:
        await audit(ctx, principal, action, tid, "not_confirmed")
        raise
    await audit(ctx, principal, action, tid, "ok")
    return web.json_response({"event_id": event_id, "ticket_id": tid, "type": event_type,
                              "at": at.isoformat(), "agent": principal.name,
                              "category": category}, status=202)


async def claim_ticket(request: web.Request) -> web.Response:
    """Publish a ``claimed`` event."""
    return await _ticket_event(request, "claimed")


async def respond_ticket(request: web.Request) -> web.Response:
    """Publish a ``responded`` event (the first one stops the SLA clock)."""
    return await _ticket_event(request, "responded")


async def resolve_ticket(request: web.Request) -> web.Response:
    """Publish a ``resolved`` event."""
    return await _ticket_event(request, "resolved")


async def reclassify_ticket(request: web.Request) -> web.Response:
    """Publish a ``reclassified`` event with the corrected category."""
    return await _ticket_event(request, "reclassified")


# --- admin --------------------------------------------------------------------------------------

def _serving(ctx: Context) -> str | None:
    return ctx.models.model.version if ctx.models is not None else None


def _model_list(models_dir: Any) -> dict[str, Any]:
    state = registry.read_registry(models_dir)
    versions = []
    for manifest in registry.versions(models_dir):
        test = manifest.get("metrics", {}).get("test", {})
        versions.append({"version": str(manifest.get("version")),
                         "created_at": manifest.get("created_at"),
                         "macro_f1": test.get("macro_f1"),
                         "urgent_recall": test.get("urgent_recall"),
                         "urgent_threshold": manifest.get("urgent_threshold")})
    return {"promoted": state.get("promoted"), "history": list(state.get("history", [])),
            "versions": versions}


async def list_models(request: web.Request) -> web.Response:
    """Versions on disk, the promoted one, and the one this process serves."""
    ctx = _ctx(request)
    loop = asyncio.get_running_loop()
    listing = await loop.run_in_executor(None, _model_list, ctx.settings.models_dir)
    await audit(ctx, request[PRINCIPAL], "model.list", None, "ok")
    return web.json_response({**listing, "serving": _serving(ctx)})


async def reload_model(request: web.Request) -> web.Response:
    """Switch to the promoted model; a model that fails its checks is refused (409)."""
    ctx = _ctx(request)
    principal = request[PRINCIPAL]
    loop = asyncio.get_running_loop()
    async with ctx.reload_lock:
        previous = _serving(ctx)
        try:
            models = await loop.run_in_executor(None, check_models, ctx.settings)
        except Exception as exc:
            reason = str(exc) if isinstance(exc, registry.ModelError) else (
                f"the model could not be loaded: {type(exc).__name__}: {exc}")
            ctx.metrics.model_reloads.labels("refused").inc()
            log.warning("model reload refused; %s keeps serving: %s", previous, reason)
            await audit(ctx, principal, "model.reload", None, "refused")
            raise ApiError(409, "refused", f"{reason}; {previous} keeps serving") from None
        ctx.models = models  # the worker reads its reference at the start of each batch
        if ctx.worker is not None:
            ctx.worker.models = models
        version = models.model.version
        ctx.metrics.model_info.info({"version": version})
        ctx.metrics.model_loaded.set(1)
        ctx.metrics.model_reloads.labels("ok").inc()
    log.info("model reloaded: %s now serving (was %s)", version, previous)
    await audit(ctx, principal, "model.reload", version, "ok")
    return web.json_response({"serving": version, "previous": previous})


async def _registry_change(request: web.Request, action: str,
                           change: Callable[[], dict[str, Any]], target: str | None
                           ) -> web.Response:
    ctx = _ctx(request)
    principal = request[PRINCIPAL]
    loop = asyncio.get_running_loop()
    async with ctx.reload_lock:
        try:
            state = await loop.run_in_executor(None, change)
        except registry.ModelError as exc:
            await audit(ctx, principal, action, target, "refused")
            raise ApiError(409, "refused", str(exc)) from None
    promoted = state.get("promoted")
    await audit(ctx, principal, action, target or promoted, "ok")
    log.info("%s: %s is now promoted; POST /v1/admin/models/reload to serve it", action,
             promoted)
    return web.json_response({"promoted": promoted, "history": list(state.get("history", [])),
                              "serving": _serving(ctx)})


async def promote_model(request: web.Request) -> web.Response:
    """Promote a version (promotion gates apply)."""
    ctx = _ctx(request)
    data = parse_json(await read_body(request))
    version = data.get("version") if isinstance(data, dict) else None
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        await audit(ctx, request[PRINCIPAL], "model.promote", None, "invalid")
        raise ApiError(400, "invalid_version", "version: required, a model version name")
    settings = ctx.settings
    return await _registry_change(
        request, "model.promote",
        lambda: registry.promote(settings.models_dir, version, settings.model_signing_key,
                                 rescorer(settings, load_rules(settings.safety_rules))),
        version)


async def rollback_model(request: web.Request) -> web.Response:
    """Return to the previously promoted version."""
    settings = _ctx(request).settings
    return await _registry_change(
        request, "model.rollback",
        lambda: registry.rollback(settings.models_dir, settings.model_signing_key), None)


class AccessLog(AbstractAccessLogger):
    """Access log without query strings (they can hold a verify token) or client details."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        """One line per answered request: method, path, status, seconds."""
        self.logger.info("%s %s %d %.3fs", request.method, request.path, response.status, time)


# --- the document and registration ---------------------------------------------------------------

async def openapi_document(request: web.Request) -> web.Response:
    """The OpenAPI document."""
    return web.json_response(request.app[HTTP].document)


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", "/openapi.json", "openapi", openapi_document),
    Endpoint("GET", "/v1/webhooks/x", "xCrc", x_crc),
    Endpoint("POST", "/v1/webhooks/x", "xWebhook", x_webhook),
    Endpoint("GET", "/v1/webhooks/meta", "metaVerify", meta_verify),
    Endpoint("POST", "/v1/webhooks/meta", "metaWebhook", meta_webhook),
    Endpoint("POST", "/v1/messages", "postMessages", post_messages, "producer"),
    Endpoint("GET", "/v1/tickets", "listTickets", list_tickets, "agent", "ticket.list"),
    Endpoint("GET", "/v1/tickets/{ticket_id}", "getTicket", get_ticket, "agent",
             "ticket.view"),
    Endpoint("POST", "/v1/tickets/{ticket_id}/claim", "claimTicket", claim_ticket, "agent",
             "ticket.claimed"),
    Endpoint("POST", "/v1/tickets/{ticket_id}/respond", "respondTicket", respond_ticket,
             "agent", "ticket.responded"),
    Endpoint("POST", "/v1/tickets/{ticket_id}/resolve", "resolveTicket", resolve_ticket,
             "agent", "ticket.resolved"),
    Endpoint("POST", "/v1/tickets/{ticket_id}/reclassify", "reclassifyTicket",
             reclassify_ticket, "agent", "ticket.reclassified"),
    Endpoint("GET", "/v1/admin/models", "listModels", list_models, "admin", "model.list"),
    Endpoint("POST", "/v1/admin/models/reload", "reloadModel", reload_model, "admin",
             "model.reload"),
    Endpoint("POST", "/v1/admin/models/promote", "promoteModel", promote_model, "admin",
             "model.promote"),
    Endpoint("POST", "/v1/admin/models/rollback", "rollbackModel", rollback_model, "admin",
             "model.rollback"),
)


def add_routes(app: web.Application) -> None:
    """Register the front door's routes and middlewares on the service's app."""
    settings = app[CTX].settings
    app[HTTP] = HttpState(principals=principals(settings),
                          endpoints={e.name: e for e in ENDPOINTS},
                          document=openapi.document())
    app.middlewares.append(errors_middleware)
    app.middlewares.append(auth_middleware)
    for endpoint in ENDPOINTS:
        app.router.add_route(endpoint.method, endpoint.path, endpoint.handler,
                             name=endpoint.name)
