"""route.decide from a table: precedence, urgent threshold, safety net, review."""

from __future__ import annotations

import pytest

from triage.config import DEFAULT_ROUTES
from triage.route import Prediction, Rules, best_guess, decide
from triage.safety import Hit

RULES = Rules(routes=DEFAULT_ROUTES, review_queue="cc.review", review_below=0.55,
              urgent_threshold=0.30)


def probs(**p: float) -> dict[str, float]:
    base = {"urgent": 0.0, "crime_report": 0.0, "complaint": 0.0, "enquiry": 0.0,
            "chatter": 0.0}
    base.update(p)
    return base


URGENT_NOW = (Hit("weapon_now", "urgent"),)
THREAT = (Hit("threat_to_kill", "review"),)

CASES = [
    # (probabilities, safety hits, category, queue, priority, sla, review)
    (probs(urgent=0.9, chatter=0.1), (), "urgent", "cc.urgent", 1, 300, False),
    (probs(urgent=0.31, crime_report=0.69), (), "urgent", "cc.urgent", 1, 300, False),
    (probs(urgent=0.29, crime_report=0.71), (), "crime_report", "cc.crime", 2, 3600, False),
    (probs(complaint=0.8, enquiry=0.2), (), "complaint", "cc.complaints", 3, 86400, False),
    (probs(enquiry=0.9, chatter=0.1), (), "enquiry", "cc.enquiries", 3, 86400, False),
    (probs(chatter=0.95, enquiry=0.05), (), "chatter", "cc.chatter", 4, None, False),
    # low confidence: review queue, best guess and its SLA kept
    (probs(complaint=0.4, enquiry=0.35, chatter=0.25), (), "complaint", "cc.review", 3, 86400,
     True),
    (probs(chatter=0.5, enquiry=0.5), (), "enquiry", "cc.review", 3, 86400, True),
    # low-confidence urgent is never diluted into review
    (probs(urgent=0.35, complaint=0.33, chatter=0.32), (), "urgent", "cc.urgent", 1, 300, False),
    # safety net: urgent action overrides a confident non-urgent guess
    (probs(chatter=0.9, urgent=0.1), URGENT_NOW, "urgent", "cc.urgent", 1, 300, False),
    # safety net: review action keeps the guess, takes the urgent SLA and priority
    (probs(chatter=0.9, urgent=0.1), THREAT, "chatter", "cc.review", 1, 300, True),
    # safety net is moot when the model already says urgent
    (probs(urgent=0.8, chatter=0.2), THREAT, "urgent", "cc.urgent", 1, 300, False),
]


@pytest.mark.parametrize(("p", "hits", "category", "queue", "priority", "sla", "review"), CASES)
def test_decide(p: dict[str, float], hits: tuple[Hit, ...], category: str, queue: str,
                priority: int, sla: float | None, review: bool) -> None:
    decision = decide(Prediction(probabilities=p, features=("knife",), safety=hits), RULES)
    assert (decision.category, decision.queue, decision.priority, decision.sla_seconds,
            decision.review) == (category, queue, priority, sla, review)
    assert decision.confidence == pytest.approx(p[category])
    assert "feature:knife" in decision.reasons
    assert all(f"safety:{h.name}" in decision.reasons for h in hits)


def test_ties_go_to_the_earlier_category() -> None:
    assert best_guess(probs(crime_report=0.5, complaint=0.5)) == "crime_report"
    assert best_guess(probs(enquiry=0.4, chatter=0.4, complaint=0.2)) == "enquiry"


def test_configured_routes_are_used() -> None:
    routes = dict(DEFAULT_ROUTES)
    routes["enquiry"] = routes["enquiry"].model_copy(update={"queue": "cc.general",
                                                             "sla_seconds": 7200.0})
    rules = Rules(routes=routes, review_queue="cc.review", review_below=0.5,
                  urgent_threshold=0.3)
    decision = decide(Prediction(probabilities=probs(enquiry=0.9)), rules)
    assert (decision.queue, decision.sla_seconds) == ("cc.general", 7200.0)
