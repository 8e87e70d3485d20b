"""SLA decisions and retry backoff from tables: pure functions, times in Unix seconds."""

from __future__ import annotations

import pytest

from triage.consume import compute_backoff
from triage.sla import Status, clock_start, deadline, status

T0 = 1_700_000_000.0


@pytest.mark.parametrize(("created", "received", "expected"), [
    (T0 - 60, T0, T0 - 60),        # the clock starts when the person sent it
    (None, T0, T0),                 # no created_at: receive time
    (T0 + 3600, T0, T0),            # created in the future (skewed clock): receive time
    (T0 + 4, T0, T0 + 4),           # within the skew allowance: trusted
])
def test_clock_start(created: float | None, received: float, expected: float) -> None:
    assert clock_start(created, received) == expected


@pytest.mark.parametrize(("start", "sla", "expected"), [
    (T0, 300.0, T0 + 300), (T0, 3600.0, T0 + 3600), (T0, None, None)])
def test_deadline(start: float, sla: float | None, expected: float | None) -> None:
    assert deadline(start, sla) == expected


@pytest.mark.parametrize(("now", "sla", "responded", "expected"), [
    (T0 + 10, 300.0, None, Status.OK),
    (T0 + 239, 300.0, None, Status.OK),
    (T0 + 240, 300.0, None, Status.AT_RISK),     # 80% of the target gone
    (T0 + 300, 300.0, None, Status.AT_RISK),     # exactly at the target: not yet breached
    (T0 + 301, 300.0, None, Status.BREACHED),
    (T0 + 9999, 300.0, T0 + 299, Status.MET),
    (T0 + 9999, 300.0, T0 + 300, Status.MET),
    (T0 + 9999, 300.0, T0 + 301, Status.MISSED),
    (T0 + 9999, None, None, Status.NONE),         # chatter has no SLA
])
def test_status(now: float, sla: float | None, responded: float | None,
                expected: Status) -> None:
    assert status(now, T0, sla, responded, at_risk_share=0.8) == expected


@pytest.mark.parametrize(("attempt", "expected"), [
    (1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 5.0), (50, 5.0)])
def test_compute_backoff(attempt: int, expected: float) -> None:
    assert compute_backoff(attempt) == expected
