"""Prometheus metrics: every name in one place, built per process from the settings.

Names follow Prometheus conventions: ``triage_`` prefix, base units, ``_total`` counters.
Labels are bounded: category, queue, state, platform (known set), kind, reason (fixed set).
Histogram buckets include every SLA target exactly, so ``le="300"`` answers "within 5 minutes".
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from triage.config import CATEGORIES, Settings
from triage.schema import REJECT_REASONS

#: Bucket edges before SLA targets are merged in: 10 ms to 2 days.
BASE_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
BASE_RESPONSE_BUCKETS = (30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 43200,
                         86400, 172800)
CONFIDENCE_BUCKETS = (0.3, 0.4, 0.5, 0.55, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


def buckets(base: Iterable[float], targets: Iterable[float]) -> tuple[float, ...]:
    """Sorted, de-duplicated bucket edges: ``base`` plus every SLA target exactly."""
    return tuple(sorted({float(b) for b in base} | {float(t) for t in targets}))


class Metrics:
    """All of the service's metrics, registered on one :class:`CollectorRegistry`."""

    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        targets = settings.sla_targets.values()
        self.messages_received = Counter(
            "triage_messages_received_total", "Inbound messages taken off the inbound queue.",
            ["platform", "kind"], registry=r)
        self.messages_dead_lettered = Counter(
            "triage_messages_dead_lettered_total",
            "Inbound messages sent to the dead-letter queue, by reason.", ["reason"], registry=r)
        self.tickets_routed = Counter(
            "triage_tickets_routed_total", "Tickets confirmed by the broker in a queue.",
            ["category", "queue"], registry=r)
        self.duplicates_suppressed = Counter(
            "triage_duplicates_suppressed_total",
            "Inbound messages that already had a confirmed ticket.", registry=r)
        self.tickets_republished = Counter(
            "triage_tickets_republished_total",
            "Tickets recorded earlier but not confirmed, published again.", registry=r)
        self.publish_failures = Counter(
            "triage_publish_failures_total",
            "Ticket publishes the broker did not confirm (returned, nacked, timed out).",
            ["reason"], registry=r)
        self.routing_latency = Histogram(
            "triage_routing_latency_seconds",
            "From the message being received to its ticket confirmed.", ["category"],
            buckets=buckets(BASE_LATENCY_BUCKETS, targets), registry=r)
        self.first_response = Histogram(
            "triage_first_response_seconds",
            "SLA clock: from the message being sent to the first human response.",
            ["category"], buckets=buckets(BASE_RESPONSE_BUCKETS, targets), registry=r)
        self.sla_breaches = Counter(
            "triage_sla_breaches_total", "Tickets that passed their SLA target unanswered.",
            ["category"], registry=r)
        self.sla_at_risk = Counter(
            "triage_sla_at_risk_total",
            "Tickets that used the at-risk share of their SLA target unanswered.",
            ["category"], registry=r)
        self.sla_met = Counter(
            "triage_sla_responses_total",
            "First responses, by whether they met the SLA target.", ["category", "met"],
            registry=r)
        self.escalations = Counter(
            "triage_escalations_total", "Breached tickets published to the escalations queue.",
            ["category"], registry=r)
        self.tickets_open = Gauge(
            "triage_tickets_open", "Tickets not yet resolved, by state.", ["category", "state"],
            registry=r)
        self.oldest_unanswered = Gauge(
            "triage_oldest_unanswered_age_seconds",
            "Age of the oldest ticket without a first response.", ["category"], registry=r)
        self.classifier_confidence = Histogram(
            "triage_classifier_confidence", "Model confidence in the routed category.",
            ["category"], buckets=CONFIDENCE_BUCKETS, registry=r)
        self.review_routed = Counter(
            "triage_review_routed_total",
            "Tickets sent to the review queue, by why (low_confidence or safety_net).",
            ["reason"], registry=r)
        self.safety_net = Counter(
            "triage_safety_net_fired_total", "Safety-net signals that changed a route.",
            ["signal"], registry=r)
        self.batch_size = Histogram(
            "triage_batch_size_messages", "Messages per processed batch.",
            buckets=BATCH_BUCKETS, registry=r)
        self.batch_seconds = Histogram(
            "triage_batch_duration_seconds", "Time to process one batch, by stage.", ["stage"],
            buckets=BASE_LATENCY_BUCKETS, registry=r)
        self.events_applied = Counter(
            "triage_events_applied_total", "Lifecycle events applied to tickets.",
            ["event", "outcome"], registry=r)
        self.model_info = Info(
            "triage_model", "The model serving predictions.", registry=r)
        self.model_loaded = Gauge(
            "triage_model_loaded", "1 while a verified model is loaded.", registry=r)
        self.model_reloads = Counter(
            "triage_model_reloads_total", "Model reload attempts.", ["outcome"], registry=r)
        self.consumers = Gauge(
            "triage_consumers_attached", "Consumers this process has attached to queues.",
            ["queue"], registry=r)
        self.broker_connected = Gauge(
            "triage_broker_connected", "1 while the broker connection is open.", registry=r)
        self.store_errors = Counter(
            "triage_store_errors_total", "Ticket store operations that failed.", ["operation"],
            registry=r)
        self.http_requests = Counter(
            "triage_http_requests_total", "HTTP requests answered, by route name and status.",
            ["route", "code"], registry=r)
        self.http_messages = Counter(
            "triage_http_messages_published_total",
            "Inbound messages published (confirmed) from the HTTP front door, by source "
            "(x, meta, producer).", ["source"], registry=r)
        self.last_message = Gauge(
            "triage_last_message_timestamp_seconds",
            "Unix time of the last inbound message this process handled.", registry=r)
        self._zero(settings)

    def _zero(self, settings: Settings) -> None:
        """Create every known label set at 0, so the first event of a kind is an increase."""
        for reason in REJECT_REASONS:
            self.messages_dead_lettered.labels(reason)
        for category, route in settings.routes.items():
            for counter in (self.sla_breaches, self.sla_at_risk, self.escalations):
                counter.labels(category)
            self.tickets_routed.labels(category, route.queue)
            self.tickets_routed.labels(category, settings.review_queue)
            for met in ("true", "false"):
                self.sla_met.labels(category, met)
        for reason in ("unroutable", "timeout", "not_confirmed"):
            self.publish_failures.labels(reason)
        for outcome in ("ok", "refused"):
            self.model_reloads.labels(outcome)
        for source in ("x", "meta", "producer"):
            self.http_messages.labels(source)
        assert set(settings.routes) == set(CATEGORIES)
