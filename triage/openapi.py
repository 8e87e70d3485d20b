"""The OpenAPI 3.1 document of the HTTP API, as data; served at ``GET /openapi.json``.

A test checks that every route the app registers is described here and nothing else is, and
schemathesis fuzzes the running service from this document. ``operationId`` is the aiohttp
route name (``triage.http`` registers routes under these names).
"""

from __future__ import annotations

from typing import Any

from triage.config import CATEGORIES

#: Patterns the handlers enforce, shared with the document.
TICKET_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"
QUEUE_PATTERN = r"^[A-Za-z0-9._:-]{1,200}$"
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
MAX_BATCH = 500
STATES = ("routed", "claimed", "responded", "resolved")

_NULLABLE_STRING: dict[str, Any] = {"type": ["string", "null"]}
_NULLABLE_TIME: dict[str, Any] = {"type": ["string", "null"], "format": "date-time"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


ERRORS = {
    "400": "Malformed request; `detail` gives the reason (never the content).",
    "401": "No valid credentials: missing or unknown bearer token, or a bad signature.",
    "403": "The token is valid but its role may not do this.",
    "404": "Not found (or the platform's webhook is not configured).",
    "409": "Refused: `detail` gives the reason; nothing changed.",
    "413": "The body is larger than `TRIAGE_MAX_BODY_BYTES`.",
    "503": "The broker did not confirm the publish; retry later.",
}


def _errors(*codes: str) -> dict[str, Any]:
    return {code: _error(ERRORS[code]) for code in codes}


def _op(op_id: str, summary: str, responses: dict[str, Any], *, tag: str,
        security: str | None = None, parameters: list[dict[str, Any]] | None = None,
        body: dict[str, Any] | None = None, description: str | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {"operationId": op_id, "summary": summary, "tags": [tag],
                                 "responses": responses}
    if description:
        operation["description"] = description
    if security:
        operation["security"] = [{security: []}]
    else:
        operation["security"] = []
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = body
    return operation


def _query(name: str, schema: dict[str, Any], description: str,
           required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema,
            "description": description}


def _header(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": True, "schema": {"type": "string"},
            "description": description}


_TICKET_PARAM = {"name": "ticket_id", "in": "path", "required": True,
                 "schema": {"type": "string", "pattern": TICKET_ID_PATTERN},
                 "description": "The ticket id (a UUID derived from platform and message id)."}

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error", "detail"],
              "properties": {"error": {"type": "string"}, "detail": {"type": "string"}}},
    "InboundMessage": {
        "type": "object", "description": "Inbound message v1 (see the README's Contracts).",
        "required": ["id", "platform", "kind", "text", "author", "account"],
        "properties": {
            "version": {"type": "integer", "enum": [1]},
            "id": {"type": "string", "minLength": 1, "maxLength": 200},
            "platform": {"type": "string", "pattern": "^[a-z0-9_.-]{1,32}$"},
            "kind": {"type": "string", "enum": ["mention", "reply", "comment", "dm"]},
            "text": {"type": "string", "minLength": 1, "maxLength": 20000},
            "created_at": _NULLABLE_TIME,
            "received_at": _NULLABLE_TIME,
            "author": {"type": "object", "required": ["id"], "properties": {
                "id": {"type": "string", "minLength": 1, "maxLength": 200},
                "handle": {"type": ["string", "null"], "maxLength": 200},
                "name": {"type": ["string", "null"], "maxLength": 500}}},
            "account": {"type": "object", "required": ["handle", "type"], "properties": {
                "handle": {"type": "string", "minLength": 1, "maxLength": 200},
                "type": {"type": "string", "enum": ["force", "neighbourhood", "officer"]}}},
            "in_reply_to": {"type": ["string", "null"], "maxLength": 200},
            "lang": {"type": ["string", "null"], "maxLength": 35},
            "url": {"type": ["string", "null"], "maxLength": 2000},
        },
    },
    "Accepted": {
        "type": "object", "required": ["accepted", "ticket_ids"],
        "properties": {"accepted": {"type": "integer", "minimum": 0},
                       "ticket_ids": {"type": "array", "items": {"type": "string"}}}},
    "WebhookAccepted": {
        "type": "object", "required": ["accepted", "ignored"],
        "properties": {"accepted": {"type": "integer", "minimum": 0},
                       "ignored": {"type": "integer", "minimum": 0}}},
    "Ticket": {
        "type": "object",
        "required": ["ticket_id", "queue", "category", "state", "priority", "message"],
        "properties": {
            "ticket_id": {"type": "string"}, "queue": {"type": "string"},
            "category": {"type": "string", "enum": list(CATEGORIES)},
            "original_category": {"type": "string"},
            "priority": {"type": "integer"}, "review": {"type": "boolean"},
            "confidence": {"type": "number"},
            "reasons": {"type": "array", "items": {"type": "string"}},
            "model_version": {"type": "string"},
            "state": {"type": "string", "enum": list(STATES)},
            "sla_seconds": {"type": ["number", "null"]},
            "sla_start": {"type": "string", "format": "date-time"},
            "received_at": {"type": "string", "format": "date-time"},
            "routed_at": {"type": "string", "format": "date-time"},
            "published_at": _NULLABLE_TIME, "respond_by": _NULLABLE_TIME,
            "claimed_at": _NULLABLE_TIME, "responded_at": _NULLABLE_TIME,
            "resolved_at": _NULLABLE_TIME, "at_risk_at": _NULLABLE_TIME,
            "breached_at": _NULLABLE_TIME, "escalated_at": _NULLABLE_TIME,
            "reclassified_to": _NULLABLE_STRING, "reclassified_at": _NULLABLE_TIME,
            "agent": _NULLABLE_STRING,
            "message": {"type": "object", "description": "The inbound message v1."},
        },
    },
    "TicketPage": {
        "type": "object", "required": ["tickets", "next_cursor"],
        "properties": {"tickets": {"type": "array", "items": _ref("Ticket")},
                       "next_cursor": _NULLABLE_STRING}},
    "EventAccepted": {
        "type": "object", "required": ["event_id", "ticket_id", "type", "at"],
        "description": "The lifecycle event v1 published to triage.events (broker confirmed); "
                       "the ticket changes when the events consumer applies it.",
        "properties": {
            "event_id": {"type": "string"}, "ticket_id": {"type": "string"},
            "type": {"type": "string",
                     "enum": ["claimed", "responded", "resolved", "reclassified"]},
            "at": {"type": "string", "format": "date-time"},
            "agent": {"type": "string"}, "category": _NULLABLE_STRING}},
    "Reclassify": {
        "type": "object", "required": ["category"],
        "properties": {"category": {"type": "string", "enum": list(CATEGORIES)}}},
    "Promote": {
        "type": "object", "required": ["version"],
        "properties": {"version": {"type": "string", "pattern": VERSION_PATTERN}}},
    "Registry": {
        "type": "object", "required": ["promoted", "history", "serving"],
        "properties": {"promoted": _NULLABLE_STRING,
                       "history": {"type": "array", "items": {"type": "string"}},
                       "serving": _NULLABLE_STRING}},
    "ModelList": {
        "type": "object", "required": ["promoted", "history", "serving", "versions"],
        "properties": {
            "promoted": _NULLABLE_STRING, "serving": _NULLABLE_STRING,
            "history": {"type": "array", "items": {"type": "string"}},
            "versions": {"type": "array", "items": {
                "type": "object", "required": ["version"], "properties": {
                    "version": {"type": "string"}, "created_at": _NULLABLE_STRING,
                    "macro_f1": {"type": ["number", "null"]},
                    "urgent_recall": {"type": ["number", "null"]},
                    "urgent_threshold": {"type": ["number", "null"]}}}}}},
    "Reloaded": {
        "type": "object", "required": ["serving", "previous"],
        "properties": {"serving": {"type": "string"}, "previous": _NULLABLE_STRING}},
    "PlatformPayload": {"type": "object", "additionalProperties": True},
}


def _ticket_action(op_id: str, summary: str, body: dict[str, Any] | None = None
                   ) -> dict[str, Any]:
    return _op(op_id, summary, {
        "202": _json(_ref("EventAccepted"), "Event published with confirms."),
        **_errors("400", "401", "403", "404", "503")},
        tag="tickets", security="agentToken", parameters=[_TICKET_PARAM], body=body)


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route the service serves."""
    payload = {"required": True, "content": {"application/json": {
        "schema": _ref("PlatformPayload")}}}
    webhook_post = {"200": _json(_ref("WebhookAccepted"),
                                 "Every message in the delivery was published and confirmed."),
                    **_errors("400", "401", "404", "413", "503")}
    paths: dict[str, Any] = {
        "/healthz": {"get": _op("healthz", "Liveness: the process answers.", {
            "200": _json({"type": "object"}, "Alive.")}, tag="health")},
        "/readyz": {"get": _op("readyz", "Readiness: broker, consumers, model, store, writes.", {
            "200": _json({"type": "object"}, "Ready."),
            "503": _json({"type": "object"}, "Not ready; `checks` says what fails.")},
            tag="health")},
        "/metrics": {"get": _op("metrics", "Prometheus exposition.", {
            "200": {"description": "Metrics.", "content": {"text/plain": {
                "schema": {"type": "string"}}}}}, tag="health")},
        "/openapi.json": {"get": _op("openapi", "This document.", {
            "200": _json({"type": "object"}, "OpenAPI 3.1.")}, tag="health")},
        "/v1/webhooks/x": {
            "get": _op("xCrc", "X CRC check: the HMAC-SHA256 response token.", {
                "200": _json({"type": "object", "required": ["response_token"],
                              "properties": {"response_token": {"type": "string"}}},
                             "The response token."),
                **_errors("400", "404")}, tag="webhooks",
                parameters=[_query("crc_token", {"type": "string", "minLength": 1},
                                   "The challenge from X.", required=True)]),
            "post": _op("xWebhook", "X Account Activity delivery (mentions, replies, DMs).",
                        webhook_post, tag="webhooks", body=payload, parameters=[
                            _header("x-twitter-webhooks-signature",
                                    "sha256= + base64 HMAC-SHA256 of the raw body with the "
                                    "consumer secret.")]),
        },
        "/v1/webhooks/meta": {
            "get": _op("metaVerify", "Meta subscription verification: echo hub.challenge.", {
                "200": {"description": "The challenge.",
                        "content": {"text/plain": {"schema": {"type": "string"}}}},
                **_errors("403", "404")}, tag="webhooks", parameters=[
                    _query("hub.mode", {"type": "string"}, "subscribe"),
                    _query("hub.verify_token", {"type": "string"}, "The verify token."),
                    _query("hub.challenge", {"type": "string"}, "Echoed when genuine.")]),
            "post": _op("metaWebhook", "Meta delivery (page/Instagram DMs, comments, mentions).",
                        webhook_post, tag="webhooks", body=payload, parameters=[
                            _header("X-Hub-Signature-256",
                                    "sha256= + hex HMAC-SHA256 of the raw body with the app "
                                    "secret.")]),
        },
        "/v1/messages": {"post": _op(
            "postMessages", "Publish one inbound message v1, or a batch (a JSON array).", {
                "202": _json(_ref("Accepted"), "Published and confirmed; tickets follow."),
                **_errors("400", "401", "403", "413", "503")},
            tag="messages", security="producerToken", body={"required": True, "content": {
                "application/json": {"schema": {"oneOf": [
                    _ref("InboundMessage"),
                    {"type": "array", "minItems": 1, "maxItems": MAX_BATCH,
                     "items": _ref("InboundMessage")}]}}}},
            description="All or nothing: a batch with any invalid message is refused whole "
                        "(400, naming its index). Re-sending a message never makes a second "
                        "ticket.")},
        "/v1/tickets": {"get": _op(
            "listTickets", "Published tickets, oldest first (SLA clock start), paged.", {
                "200": {**_json(_ref("TicketPage"), "A page of tickets."), "links": {
                    op: {"operationId": op, "description": "The first ticket of the page.",
                         "parameters": {"ticket_id": "$response.body#/tickets/0/ticket_id"}}
                    for op in ("getTicket", "claimTicket", "respondTicket", "resolveTicket",
                               "reclassifyTicket")}},
                **_errors("400", "401", "403")},
            tag="tickets", security="agentToken", parameters=[
                _query("queue", {"type": "string", "pattern": QUEUE_PATTERN},
                       "Only this contact-centre queue."),
                _query("state", {"type": "string", "enum": list(STATES)}, "Only this state."),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 200,
                                 "default": 50}, "Page size."),
                _query("cursor", {"type": "string"}, "`next_cursor` of the previous page.")])},
        "/v1/tickets/{ticket_id}": {"get": _op(
            "getTicket", "One ticket, with its message.", {
                "200": _json(_ref("Ticket"), "The ticket."),
                **_errors("400", "401", "403", "404")},
            tag="tickets", security="agentToken", parameters=[_TICKET_PARAM])},
        "/v1/tickets/{ticket_id}/claim": {"post": _ticket_action(
            "claimTicket", "Claim: publishes a `claimed` event.")},
        "/v1/tickets/{ticket_id}/respond": {"post": _ticket_action(
            "respondTicket", "First response sent: publishes a `responded` event (stops the "
            "SLA clock).")},
        "/v1/tickets/{ticket_id}/resolve": {"post": _ticket_action(
            "resolveTicket", "Resolve: publishes a `resolved` event.")},
        "/v1/tickets/{ticket_id}/reclassify": {"post": _ticket_action(
            "reclassifyTicket", "Correct the category: publishes a `reclassified` event.",
            body={"required": True, "content": {"application/json": {
                "schema": _ref("Reclassify")}}})},
        "/v1/admin/models": {"get": _op(
            "listModels", "Model versions, the promoted one and the one serving.", {
                "200": _json(_ref("ModelList"), "Models."), **_errors("401", "403")},
            tag="admin", security="adminToken")},
        "/v1/admin/models/reload": {"post": _op(
            "reloadModel", "Switch to the promoted model without a restart.", {
                "200": _json(_ref("Reloaded"), "The promoted model is serving."),
                **_errors("401", "403", "409")},
            tag="admin", security="adminToken",
            description="Loads and verifies the promoted model off the event loop; on success "
                        "new batches use it (a batch in flight finishes on the old one). A model "
                        "that fails its checks is refused (409) and the old one keeps serving.")},
        "/v1/admin/models/promote": {"post": _op(
            "promoteModel", "Promote a version (promotion gates apply); then reload.", {
                "200": _json(_ref("Registry"), "The new registry state."),
                **_errors("400", "401", "403", "409")},
            tag="admin", security="adminToken", body={"required": True, "content": {
                "application/json": {"schema": _ref("Promote")}}})},
        "/v1/admin/models/rollback": {"post": _op(
            "rollbackModel", "Return to the previously promoted version; then reload.", {
                "200": _json(_ref("Registry"), "The new registry state."),
                **_errors("401", "403", "409")},
            tag="admin", security="adminToken")},
    }
    bearer = {"type": "http", "scheme": "bearer"}
    return {
        "openapi": "3.1.0",
        "info": {"title": "triage", "version": "1",
                 "description": "Platform webhooks, inbound messages, the ticket API for "
                                "contact centres and the admin API. Errors are JSON "
                                "`{error, detail}`; details never contain message text."},
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "agentToken": {**bearer, "description": "A TRIAGE_AGENT_TOKENS token."},
                "adminToken": {**bearer, "description": "A TRIAGE_ADMIN_TOKENS token."},
                "producerToken": {**bearer, "description": "A TRIAGE_PRODUCER_TOKENS token."},
            },
        },
    }
