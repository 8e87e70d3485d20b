"""Settings: defaults from the labelling guide; a bad value names the setting."""

from __future__ import annotations

import pytest

from triage import config
from triage.config import ConfigError


def test_defaults_follow_the_labelling_guide() -> None:
    s = config.load()
    assert [(c, r.queue, r.priority, r.sla_seconds) for c, r in s.routes.items()] == [
        ("urgent", "cc.urgent", 1, 300), ("crime_report", "cc.crime", 2, 3600),
        ("complaint", "cc.complaints", 3, 86400), ("enquiry", "cc.enquiries", 3, 86400),
        ("chatter", "cc.chatter", 4, None)]
    assert s.review_queue == "cc.review"
    assert s.amqp_url == "amqp://guest:guest@127.0.0.1:5672/"


def test_partial_route_override_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIAGE_ROUTES", '{"urgent": {"sla_seconds": 120}}')
    s = config.load()
    assert s.routes["urgent"].sla_seconds == 120
    assert s.routes["urgent"].queue == "cc.urgent"
    assert s.routes["complaint"].sla_seconds == 86400


@pytest.mark.parametrize(("name", "value"), [
    ("TRIAGE_AMQP_URL", "http://localhost"),
    ("TRIAGE_HTTP_PORT", "eighty"),
    ("TRIAGE_PREFETCH", "0"),
    ("TRIAGE_DB_URL", "mysql://x"),
    ("TRIAGE_REVIEW_BELOW", "2"),
    ("TRIAGE_ROUTES", '{"urgnet": {"sla_seconds": 1}}'),
    ("TRIAGE_LOG_LEVEL", "LOUD"),
])
def test_bad_setting_is_named(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        config.load()


def test_settings_are_frozen() -> None:
    s = config.load()
    with pytest.raises(Exception):  # noqa: B017 - pydantic raises its ValidationError
        s.prefetch = 5  # type: ignore[misc]
