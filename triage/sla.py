"""SLA decisions as pure functions of times in Unix seconds: no clock reads, no I/O.

The clock starts when the member of the public sent the message (``created_at``), or when it
was received if ``created_at`` is missing or in the future (a clock-skewed platform must not
give us extra time), and stops at the first response.
"""

from __future__ import annotations

from enum import StrEnum

#: How far ``created_at`` may be ahead of the receive time before it is distrusted.
CLOCK_SKEW_SECONDS = 5.0


class Status(StrEnum):
    """Where a ticket stands against its SLA."""

    NONE = "none"          # the category has no SLA target
    OK = "ok"              # unanswered, within the at-risk share
    AT_RISK = "at_risk"    # unanswered, past the at-risk share of the target
    BREACHED = "breached"  # unanswered, past the target
    MET = "met"            # answered within the target
    MISSED = "missed"      # answered after the target


def clock_start(created_at: float | None, received_at: float) -> float:
    """When the SLA clock starts."""
    if created_at is None or created_at > received_at + CLOCK_SKEW_SECONDS:
        return received_at
    return created_at


def deadline(start: float, sla_seconds: float | None) -> float | None:
    """When the first response is due, or None when there is no target."""
    return None if sla_seconds is None else start + sla_seconds


def status(now: float, start: float, sla_seconds: float | None, responded_at: float | None,
           at_risk_share: float) -> Status:
    """The ticket's SLA status at ``now``."""
    if sla_seconds is None:
        return Status.NONE
    if responded_at is not None:
        return Status.MET if responded_at - start <= sla_seconds else Status.MISSED
    waited = now - start
    if waited > sla_seconds:
        return Status.BREACHED
    if waited >= at_risk_share * sla_seconds:
        return Status.AT_RISK
    return Status.OK

