"""Settings, read once into a frozen object; every name and default lives here.

The category table is the product contract of ``labelling-guide.md``: five categories in
precedence order, each with a default queue, priority and SLA target. Everything can be
overridden from ``TRIAGE_*`` environment variables; a bad value stops start-up with an error
that names the setting.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The five categories, in the labelling guide's order: when several fit, the first wins.
CATEGORIES: tuple[str, ...] = ("urgent", "crime_report", "complaint", "enquiry", "chatter")
URGENT = "urgent"
REVIEW = "review"

#: Schema versions this service reads and writes.
INBOUND_SCHEMA_VERSION = 1
TICKET_SCHEMA_VERSION = 1
EVENT_SCHEMA_VERSION = 1

#: AMQP header names the service sets.
HEADER_SCHEMA = "x-triage-schema"
HEADER_REASON = "x-triage-reason"
HEADER_DETAIL = "x-triage-detail"
HEADER_SOURCE_QUEUE = "x-triage-source-queue"


class Route(BaseModel):
    """Where one category goes: its queue, priority (1 = highest) and SLA target."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    queue: str = Field(min_length=1, max_length=200)
    priority: int = Field(ge=1, le=9)
    sla_seconds: float | None = Field(default=None, gt=0)


#: Defaults from the labelling guide.
DEFAULT_ROUTES: Mapping[str, Route] = {
    "urgent": Route(queue="cc.urgent", priority=1, sla_seconds=5 * 60),
    "crime_report": Route(queue="cc.crime", priority=2, sla_seconds=60 * 60),
    "complaint": Route(queue="cc.complaints", priority=3, sla_seconds=24 * 3600),
    "enquiry": Route(queue="cc.enquiries", priority=3, sla_seconds=24 * 3600),
    "chatter": Route(queue="cc.chatter", priority=4, sla_seconds=None),
}


#: Roles of the HTTP API; each bearer token has exactly one.
ROLES: tuple[str, ...] = ("agent", "admin", "producer")
_TOKEN_NAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
MIN_TOKEN_CHARS = 16


def parse_tokens(value: str) -> dict[str, str]:
    """``name:token,name:token`` as ``{name: token}``; errors never quote a token."""
    found: dict[str, str] = {}
    for number, item in enumerate((i.strip() for i in value.split(",")), start=1):
        if not item:
            continue
        name, sep, token = item.partition(":")
        name, token = name.strip(), token.strip()
        if not sep or not _TOKEN_NAME.match(name):
            raise ValueError(f"entry {number}: expected name:token with a name of letters, "
                             "digits and ._@- (at most 64)")
        if len(token) < MIN_TOKEN_CHARS or any(c.isspace() for c in token):
            raise ValueError(f"entry {number} ({name}): the token must be at least "
                             f"{MIN_TOKEN_CHARS} characters without spaces")
        if name in found:
            raise ValueError(f"entry {number}: the name {name!r} appears twice")
        if token in found.values():
            raise ValueError(f"entry {number} ({name}): the same token appears twice")
        found[name] = token
    return found


class Settings(BaseSettings):
    """All configuration of the service. Built once by :func:`load`; frozen."""

    model_config = SettingsConfigDict(
        env_prefix="TRIAGE_", frozen=True, extra="ignore", case_sensitive=False
    )

    # Connections
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    db_url: str = "sqlite:///triage.db"
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)

    # Models
    models_dir: Path = Path("models")
    model_signing_key: str | None = None
    safety_rules: Path | None = None  # default: the file shipped in triage/rules/
    corpus_path: Path = Path("models/corpus/corpus.jsonl")
    eval_dir: Path = Path("../shared/eval")

    # Topology: exchange and queue names
    inbound_exchange: str = "triage.inbound"
    inbound_queue: str = "triage.inbound"
    tickets_exchange: str = "triage.tickets"
    dead_exchange: str = "triage.dead"
    dead_queue: str = "triage.dead"
    events_exchange: str = "triage.events"
    events_queue: str = "triage.events"
    escalations_queue: str = "cc.escalations"
    review_queue: str = "cc.review"
    delivery_limit: int = Field(default=5, ge=1, le=1000)

    # Routing
    routes: dict[str, Route] = Field(default_factory=lambda: dict(DEFAULT_ROUTES))
    review_below: float = Field(default=0.55, ge=0.0, le=1.0)
    urgent_threshold: float | None = Field(default=None, gt=0.0, le=1.0)

    # Worker
    prefetch: int = Field(default=500, ge=1, le=65535)
    batch_max: int = Field(default=200, ge=1, le=10000)
    batches_in_flight: int = Field(default=2, ge=1, le=16)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    publish_timeout_seconds: float = Field(default=30.0, gt=0)
    shutdown_grace_seconds: float = Field(default=25.0, gt=0)
    store_stall_seconds: float = Field(default=5.0, gt=0)

    # SLA watchdog
    at_risk_share: float = Field(default=0.8, gt=0.0, lt=1.0)
    watchdog_interval_seconds: float = Field(default=5.0, gt=0)

    # HTTP API: bearer tokens per role (``name:token`` lists) and platform webhook secrets
    agent_tokens: SecretStr = SecretStr("")
    admin_tokens: SecretStr = SecretStr("")
    producer_tokens: SecretStr = SecretStr("")
    x_consumer_secret: SecretStr | None = None
    meta_app_secret: SecretStr | None = None
    meta_verify_token: SecretStr | None = None

    log_level: str = "INFO"

    @field_validator("routes", mode="before")
    @classmethod
    def _merge_routes(cls, value: Any) -> Any:
        """Merge a partial override (``{"urgent": {"sla_seconds": 120}}``) onto the defaults."""
        if not isinstance(value, Mapping):
            return value
        unknown = set(value) - set(CATEGORIES)
        if unknown:
            raise ValueError(f"unknown categories {sorted(unknown)}; expected {list(CATEGORIES)}")
        merged: dict[str, Any] = {}
        for name in CATEGORIES:
            base = DEFAULT_ROUTES[name].model_dump()
            override = value.get(name, {})
            if isinstance(override, Route):
                override = override.model_dump()
            merged[name] = {**base, **dict(override)}
        return merged

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        value = value.upper()
        if value not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return value

    @field_validator("agent_tokens", "admin_tokens", "producer_tokens")
    @classmethod
    def _tokens(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        """Well-formed, and no token shared with another role (roles stay separate)."""
        mine = set(parse_tokens(value.get_secret_value()).values())
        for role in ROLES:
            other = info.data.get(f"{role}_tokens")
            if other is not None and f"{role}_tokens" != info.field_name and mine & set(
                    parse_tokens(other.get_secret_value()).values()):
                raise ValueError(f"a token is also a {role} token; each role needs its own")
        return value

    @field_validator("x_consumer_secret", "meta_app_secret", "meta_verify_token")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        """An empty secret means the platform's webhook is not configured."""
        if value is None or not value.get_secret_value().strip():
            return None
        return value

    @field_validator("amqp_url")
    @classmethod
    def _amqp(cls, value: str) -> str:
        if not value.startswith(("amqp://", "amqps://")):
            raise ValueError("must be an amqp:// or amqps:// URL")
        return value

    @field_validator("db_url")
    @classmethod
    def _db(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "sqlite+aiosqlite:", "postgresql:", "postgres:",
                                 "postgresql+asyncpg:")):
            raise ValueError("must be a sqlite:/// path or a postgresql:// URL")
        return value

    @property
    def ticket_queues(self) -> tuple[str, ...]:
        """Every contact-centre queue the service routes to, without repeats."""
        queues = [route.queue for route in self.routes.values()]
        queues += [self.review_queue, self.escalations_queue]
        return tuple(dict.fromkeys(queues))

    def tokens(self, role: str) -> dict[str, str]:
        """``{name: token}`` of one role (``agent``, ``admin`` or ``producer``)."""
        secret: SecretStr = getattr(self, f"{role}_tokens")
        return parse_tokens(secret.get_secret_value())

    @property
    def sla_targets(self) -> dict[str, float]:
        """SLA target in seconds per category that has one."""
        return {c: r.sla_seconds for c, r in self.routes.items() if r.sla_seconds is not None}


class ConfigError(Exception):
    """A setting is missing or invalid; the message names it."""


def load(**overrides: Any) -> Settings:
    """Read settings from the environment (and explicit overrides) once.

    Raises :class:`ConfigError` naming each bad setting as its environment variable.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = "TRIAGE_" + "__".join(str(p) for p in err["loc"][:1]).upper()
            where = ".".join(str(p) for p in err["loc"][1:])
            problems.append(f"{name}{' (' + where + ')' if where else ''}: {err['msg']}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None
