"""Lifecycle transitions from a table: forward only, each time set once, any order."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from triage.config import DEFAULT_ROUTES
from triage.events import Event, event_body, parse, transition
from triage.schema import Rejection

T = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
TS = T.timestamp()


def row(**changes: Any) -> dict[str, Any]:
    base = {"state": "routed", "claimed_at": None, "responded_at": None, "resolved_at": None,
            "reclassified_to": None, "sla_start": TS - 600, "category": "complaint"}
    base.update(changes)
    return base


def event(type_: str, **extra: Any) -> Event:
    return Event(event_id="e1", ticket_id="t1", type=type_, at=T, **extra)


CASES = [
    (row(), event("claimed", agent="a1"), {"state": "claimed", "claimed_at": TS, "agent": "a1"},
     False),
    (row(), event("responded"), {"state": "responded", "claimed_at": TS, "responded_at": TS},
     True),
    (row(state="claimed", claimed_at=1.0), event("responded"),
     {"state": "responded", "responded_at": TS}, True),
    (row(state="responded", claimed_at=1.0, responded_at=2.0), event("claimed"), {}, False),
    (row(state="responded", claimed_at=1.0, responded_at=2.0), event("responded"), {}, False),
    (row(state="resolved", claimed_at=1.0, resolved_at=3.0), event("responded"),
     {"responded_at": TS}, True),
    (row(), event("resolved"), {"state": "resolved", "resolved_at": TS}, False),
    (row(state="resolved", resolved_at=3.0), event("resolved"), {}, False),
    (row(), event("reclassified", category="urgent"),
     {"reclassified_to": "urgent", "reclassified_at": TS, "category": "urgent",
      "sla_seconds": 300, "respond_by": TS - 600 + 300}, False),
    (row(), event("reclassified", category="chatter"),
     {"reclassified_to": "chatter", "reclassified_at": TS, "category": "chatter",
      "sla_seconds": None, "respond_by": None}, False),
    (row(reclassified_to="urgent"), event("reclassified", category="urgent"), {}, False),
]


@pytest.mark.parametrize(("before", "ev", "values", "first"), CASES)
def test_transition(before: dict[str, Any], ev: Event, values: dict[str, Any],
                    first: bool) -> None:
    change = transition(before, ev, DEFAULT_ROUTES)
    assert change.values == values
    assert change.first_response is first


@pytest.mark.parametrize(("body", "reason"), [
    (b"{", "not_json"),
    (b'{"event_id": "e", "ticket_id": "t", "type": "snoozed", "at": "2026-11-21T10:00:00Z"}',
     "schema_invalid"),
    (b'{"event_id": "e", "ticket_id": "t", "type": "reclassified", "at": "2026-11-21T10:00Z"}',
     "schema_invalid"),
    (b'{"event_id": "e", "ticket_id": "t", "type": "reclassified", "category": "spam",'
     b' "at": "2026-11-21T10:00:00Z"}', "schema_invalid"),
    (b'{"version": 9, "event_id": "e", "ticket_id": "t", "type": "claimed",'
     b' "at": "2026-11-21T10:00:00Z"}', "unknown_schema_version"),
])
def test_bad_events_are_rejected(body: bytes, reason: str) -> None:
    result = parse(body)
    assert isinstance(result, Rejection) and result.reason == reason


def test_round_trip() -> None:
    body = event_body("t1", "reclassified", T, event_id="e9", agent="a", category="enquiry")
    parsed = parse(body)
    assert isinstance(parsed, Event) and parsed.category == "enquiry" and parsed.at == T
