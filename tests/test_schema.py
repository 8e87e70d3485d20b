"""Decoding inbound messages: every bad input has a bounded reason and leaks no content."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from triage.schema import REJECT_REASONS, InboundMessage, Rejection, decode, ticket_id

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
SECRET = "Jane Doe 07700 900123 jane@example.org"


def message(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "1790001", "platform": "x", "kind": "dm", "text": "someone stole my bike",
        "created_at": "2026-11-21T11:59:00Z", "author": {"id": "u1", "handle": "@jane"},
        "account": {"handle": "@NorthShiresPolice", "type": "force"},
    }
    body.update(changes)
    return body


def test_valid_message_decodes_and_gets_received_at() -> None:
    result = decode(json.dumps(message()).encode(), max_bytes=65536, received_at=NOW)
    assert isinstance(result, InboundMessage)
    assert result.received_at == NOW
    assert result.created_at == datetime(2026, 11, 21, 11, 59, tzinfo=UTC)


@pytest.mark.parametrize(("body", "reason"), [
    (b"not json at all " + SECRET.encode(), "not_json"),
    (b"[1, 2, 3]", "not_json"),
    (json.dumps(message(text="   ")).encode(), "empty_text"),
    (json.dumps(message(version=2, text=SECRET)).encode(), "unknown_schema_version"),
    (json.dumps(message(version=SECRET)).encode(), "unknown_schema_version"),
    (json.dumps(message(version=7700900123)).encode(), "unknown_schema_version"),
    (json.dumps(message(kind="carrier-pigeon", text=SECRET)).encode(), "schema_invalid"),
    (json.dumps(message(author={"handle": SECRET})).encode(), "schema_invalid"),
    (json.dumps(message(account={"handle": "@x", "type": "mayor"})).encode(), "schema_invalid"),
    (json.dumps(message(created_at="yesterday-ish " + SECRET)).encode(), "schema_invalid"),
    (json.dumps(message(id="")).encode(), "schema_invalid"),
    (json.dumps(message(text="x" * 70000)).encode(), "too_large"),
    (json.dumps(message(id="12\u00003")).encode(), "schema_invalid"),
    (json.dumps(message(author={"id": "u\u0000"})).encode(), "schema_invalid"),
])
def test_bad_input_is_rejected_with_reason_and_no_content(body: bytes, reason: str) -> None:
    result = decode(body, max_bytes=65536, received_at=NOW)
    assert isinstance(result, Rejection)
    assert result.reason == reason
    assert result.reason in REJECT_REASONS
    assert "Jane" not in result.detail and "07700" not in result.detail
    assert "7700900123" not in result.detail
    assert result.detail


def test_missing_created_at_is_allowed() -> None:
    body = message()
    del body["created_at"]
    result = decode(json.dumps(body).encode(), max_bytes=65536, received_at=NOW)
    assert isinstance(result, InboundMessage) and result.created_at is None


def test_ticket_id_is_stable_and_platform_scoped() -> None:
    assert ticket_id("x", "1") == ticket_id("x", "1")
    assert ticket_id("x", "1") != ticket_id("facebook", "1")
    assert ticket_id("x", "1") != ticket_id("x", "2")


def test_unknown_platform_is_bounded_as_a_metric_label() -> None:
    result = decode(json.dumps(message(platform="myspace")).encode(), max_bytes=65536,
                    received_at=NOW)
    assert isinstance(result, InboundMessage) and result.platform_label == "other"
