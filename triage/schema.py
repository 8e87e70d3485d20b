"""Wire contracts: inbound message v1, ticket v1, and decoding with a reason for every refusal.

Decoding never raises on bad input: it returns a :class:`Rejection` whose ``reason`` is one of
:data:`REJECT_REASONS` (a bounded set, safe as a metric label) and whose ``detail`` names the
field and the problem but never echoes the message's content.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from triage.config import INBOUND_SCHEMA_VERSION, TICKET_SCHEMA_VERSION

Kind = Literal["mention", "reply", "comment", "dm"]
AccountType = Literal["force", "neighbourhood", "officer"]

#: Why a message was refused. Bounded: used as the ``reason`` metric label.
REJECT_REASONS = (
    "not_json",
    "schema_invalid",
    "empty_text",
    "too_large",
    "unknown_schema_version",
    "unroutable",
    "delivery_limit",
    "unknown_ticket",
)

#: Platforms we label metrics with; anything else counts as "other".
KNOWN_PLATFORMS = frozenset({"x", "facebook", "instagram", "tiktok", "threads", "bluesky",
                             "nextdoor", "webchat", "other"})

_TICKET_NAMESPACE = uuid.UUID("6f1c2c1e-3b9a-4c57-9d8e-2f1b8f0d7a11")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # PostgreSQL text cannot hold NUL; refuse it here rather than fail at the store.
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain a NUL character")
        return value


class Author(_Model):
    """Who sent the message. Personal data: never logged at INFO or above."""

    id: str = Field(min_length=1, max_length=200)
    handle: str | None = Field(default=None, max_length=200)
    name: str | None = Field(default=None, max_length=500)


class Account(_Model):
    """The police account the message was addressed to."""

    handle: str = Field(min_length=1, max_length=200)
    type: AccountType


class InboundMessage(_Model):
    """Inbound message v1: one mention, reply, comment or direct message."""

    version: int = INBOUND_SCHEMA_VERSION
    id: str = Field(min_length=1, max_length=200, description="platform-unique; the dedupe key")
    platform: str = Field(min_length=1, max_length=32, pattern=r"^[a-z0-9_.-]+$")
    kind: Kind
    text: str = Field(max_length=20000)
    created_at: datetime | None = None
    author: Author
    account: Account
    received_at: datetime | None = None
    in_reply_to: str | None = Field(default=None, max_length=200)
    lang: str | None = Field(default=None, max_length=35)
    url: str | None = Field(default=None, max_length=2000)

    @field_validator("created_at", "received_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    @cached_property
    def ticket_id(self) -> str:
        """Stable ticket id derived from platform and message id."""
        return ticket_id(self.platform, self.id)

    @property
    def platform_label(self) -> str:
        """The platform as a bounded metric label."""
        return self.platform if self.platform in KNOWN_PLATFORMS else "other"


class Ticket(_Model):
    """Ticket v1: a routed message, as published to a contact-centre queue."""

    version: int = TICKET_SCHEMA_VERSION
    ticket_id: str
    message: InboundMessage
    category: str
    priority: int
    queue: str
    review: bool = False
    confidence: float
    reasons: list[str]
    model_version: str
    received_at: datetime
    routed_at: datetime
    respond_by: datetime | None


def ticket_id(platform: str, message_id: str) -> str:
    """A ticket id that is the same every time the same message is seen."""
    return str(uuid.uuid5(_TICKET_NAMESPACE, f"{platform}:{message_id}"))


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a body could not be accepted. ``detail`` never contains message content."""

    reason: str
    detail: str


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def _version_label(version: Any) -> str:
    """A refused version as a detail may show it: a small integer as itself, anything else
    only by its type (the field may hold content, such as an e-mail address or a phone number).
    """
    if isinstance(version, int) and not isinstance(version, bool) and 0 <= version < 1000:
        return str(version)
    return f"of type {type(version).__name__}"


def decode(body: bytes, *, max_bytes: int, received_at: datetime) -> InboundMessage | Rejection:
    """Parse and validate one inbound body; a :class:`Rejection` says why not.

    ``received_at`` fills the field when the producer did not set it.
    """
    if len(body) > max_bytes:
        return Rejection("too_large", f"body is {len(body)} bytes; the limit is {max_bytes}")
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return Rejection("not_json", f"not valid JSON: {exc.args[0].split(':')[0]}")
    if not isinstance(data, dict):
        return Rejection("not_json", f"expected a JSON object, got {type(data).__name__}")
    version = data.get("version", INBOUND_SCHEMA_VERSION)
    if version != INBOUND_SCHEMA_VERSION:
        return Rejection("unknown_schema_version",
                         f"version {_version_label(version)} is not supported; expected "
                         f"{INBOUND_SCHEMA_VERSION}")
    text = data.get("text")
    if isinstance(text, str) and not text.strip():
        return Rejection("empty_text", "text is empty")
    if data.get("received_at") is None:
        data["received_at"] = received_at  # as is: formatting it to parse it again costs 4 us
    try:
        return InboundMessage.model_validate(data)
    except ValidationError as exc:
        return Rejection("schema_invalid", _describe(exc))


def encode(model: BaseModel) -> bytes:
    """Serialise a contract object to JSON bytes."""
    return orjson.dumps(model.model_dump(mode="json"))
