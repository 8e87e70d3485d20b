"""The routing decision: a pure function from a prediction and the rules to a queue.

Order of precedence, as in the labelling guide:

1. ``urgent`` wins when its probability reaches ``urgent_threshold`` (set lower than an even
   split, because a missed urgent message costs far more than an extra look);
2. otherwise the most probable category (ties go to the earlier category in the guide);
3. the safety net: a fired signal with action ``urgent`` makes it urgent; one with action
   ``review`` sends it to the review queue with the urgent SLA and priority;
4. a non-urgent best guess whose probability is below ``review_below`` goes to the review queue
   with its own SLA. Urgent decisions always go to the urgent queue: they are never diluted
   into review.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from triage.config import CATEGORIES, URGENT, Route, Settings
from triage.safety import Hit


@dataclass(frozen=True, slots=True)
class Prediction:
    """What the classifier says about one message."""

    probabilities: Mapping[str, float]
    features: tuple[str, ...] = ()
    safety: tuple[Hit, ...] = ()


@dataclass(frozen=True, slots=True)
class Rules:
    """Routing configuration: the category table and the two thresholds."""

    routes: Mapping[str, Route]
    review_queue: str
    review_below: float
    urgent_threshold: float

    @classmethod
    def from_settings(cls, settings: Settings, model_urgent_threshold: float) -> Rules:
        """Rules from settings; the model's tuned urgent threshold unless settings override it."""
        return cls(
            routes=settings.routes,
            review_queue=settings.review_queue,
            review_below=settings.review_below,
            urgent_threshold=settings.urgent_threshold or model_urgent_threshold,
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """Where one message goes and why."""

    category: str
    queue: str
    priority: int
    sla_seconds: float | None
    confidence: float
    review: bool
    reasons: tuple[str, ...] = field(default=())


def best_guess(probabilities: Mapping[str, float]) -> str:
    """The most probable category; ties go to the earlier category of the guide.

    ``probabilities`` holds every category; ``max`` keeps the first of equal values, and
    :data:`CATEGORIES` is in the guide's order.
    """
    return max(CATEGORIES, key=probabilities.__getitem__)


def decide(prediction: Prediction, rules: Rules) -> Decision:
    """Choose category, queue, priority and SLA for one prediction."""
    probs = prediction.probabilities
    reasons: list[str] = []
    if probs.get(URGENT, 0.0) >= rules.urgent_threshold:
        category = URGENT
        reasons.append(f"model:urgent>={rules.urgent_threshold:.2f}")
    else:
        category = best_guess(probs)
        reasons.append(f"model:{category}")
    confidence = float(probs.get(category, 0.0))
    fired = prediction.safety
    reasons += [f"safety:{h.name}" for h in fired]
    reasons += [f"feature:{f}" for f in prediction.features]

    urgent = rules.routes[URGENT]
    if category != URGENT and any(h.action == "urgent" for h in fired):
        return Decision(URGENT, urgent.queue, urgent.priority, urgent.sla_seconds,
                        float(probs.get(URGENT, 0.0)), False, tuple(reasons))
    if category != URGENT and fired:
        return Decision(category, rules.review_queue, urgent.priority, urgent.sla_seconds,
                        confidence, True, tuple(reasons))
    route = rules.routes[category]
    if category != URGENT and confidence < rules.review_below:
        reasons.append(f"low_confidence<{rules.review_below:.2f}")
        return Decision(category, rules.review_queue, route.priority, route.sla_seconds,
                        confidence, True, tuple(reasons))
    return Decision(category, route.queue, route.priority, route.sla_seconds, confidence,
                    False, tuple(reasons))
