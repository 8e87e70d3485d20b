"""Ticket lifecycle events from contact centres: schema v1 and the pure state transition.

Events arrive on exchange ``triage.events`` (and, later, from the HTTP ticket API) as JSON::

    {"version": 1, "event_id": "...", "ticket_id": "...", "type": "claimed",
     "at": "2026-11-21T10:02:00Z", "agent": "agent-17", "category": null}

``type`` is ``claimed``, ``responded`` (the first response to the member of the public),
``resolved`` or ``reclassified`` (with ``category``, the corrected one). States only move
forward (routed < claimed < responded < resolved) and each timestamp is set once, so repeated
and out-of-order events are harmless: a ``responded`` before its ``claimed`` also sets the claim
time, and a late ``claimed`` changes nothing.

SLA of a reclassified ticket: the target of the corrected category applies from then on, and
the clock still starts when the person sent the message. A correction to a stricter category
(chatter -> urgent) can therefore breach at once and be escalated by the watchdog: the
correction is the moment we learn the message was urgent all along.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from triage.config import CATEGORIES, EVENT_SCHEMA_VERSION, Route
from triage.schema import Rejection

EventType = Literal["claimed", "responded", "resolved", "reclassified"]
STATE_RANK = {"routed": 0, "claimed": 1, "responded": 2, "resolved": 3}


class Event(BaseModel):
    """Lifecycle event v1."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    version: int = EVENT_SCHEMA_VERSION
    event_id: str = Field(min_length=1, max_length=200)
    ticket_id: str = Field(min_length=1, max_length=64)
    type: EventType
    at: datetime
    agent: str | None = Field(default=None, max_length=200)
    category: str | None = None

    @field_validator("at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    @field_validator("category")
    @classmethod
    def _known(cls, value: str | None) -> str | None:
        if value is not None and value not in CATEGORIES:
            raise ValueError(f"must be one of {list(CATEGORIES)}")
        return value


def parse(body: bytes) -> Event | Rejection:
    """Validate one event body; a :class:`Rejection` says why not."""
    try:
        event = Event.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "body"
        reason = "not_json" if first["type"] == "json_invalid" else "schema_invalid"
        return Rejection(reason, f"{loc}: {first['msg']}")
    if event.version != EVENT_SCHEMA_VERSION:
        return Rejection("unknown_schema_version", f"event version {event.version}")
    if event.type == "reclassified" and event.category is None:
        return Rejection("schema_invalid", "category: required for a reclassified event")
    return event


@dataclass(frozen=True, slots=True)
class Change:
    """What to write to the ticket, and whether this event was the first response."""

    values: dict[str, Any]
    first_response: bool = False


def transition(row: Mapping[str, Any], event: Event,
               routes: Mapping[str, Route]) -> Change:
    """The update an event makes to a ticket row (empty when it changes nothing)."""
    at = event.at.timestamp()
    values: dict[str, Any] = {}
    first_response = False
    target_state = {"claimed": "claimed", "responded": "responded", "resolved": "resolved",
                    "reclassified": row["state"]}[event.type]
    if STATE_RANK[target_state] > STATE_RANK[row["state"]]:
        values["state"] = target_state
    if event.type in ("claimed", "responded") and row.get("claimed_at") is None:
        values["claimed_at"] = at
        if event.agent:
            values["agent"] = event.agent
    if event.type == "responded" and row.get("responded_at") is None:
        values["responded_at"] = at
        first_response = True
    if event.type == "resolved" and row.get("resolved_at") is None:
        values["resolved_at"] = at
    if event.type == "reclassified" and event.category and (
            row.get("reclassified_to") != event.category):
        route = routes[event.category]
        values.update(reclassified_to=event.category, reclassified_at=at,
                      category=event.category, sla_seconds=route.sla_seconds,
                      respond_by=(row["sla_start"] + route.sla_seconds
                                  if route.sla_seconds is not None else None))
    return Change(values, first_response)


def event_body(ticket_id: str, type_: str, at: datetime, *, event_id: str,
               agent: str | None = None, category: str | None = None) -> bytes:
    """Serialise an event (used by tests, the demo and the HTTP ticket API)."""
    return Event(event_id=event_id, ticket_id=ticket_id, type=type_,  # type: ignore[arg-type]
                 at=at, agent=agent, category=category).model_dump_json().encode()


def now_utc(timestamp: float) -> datetime:
    """A Unix time as an aware datetime."""
    return datetime.fromtimestamp(timestamp, UTC)
