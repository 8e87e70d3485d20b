"""Property-based tests (hypothesis): message decoding, the routing decision, webhook signatures.

``TRIAGE_PROPERTY_EXAMPLES`` sets the examples per property (default 300; the chaos suite's
long profile runs 5,000).
"""

from __future__ import annotations

import importlib.util
import os
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from triage.config import CATEGORIES, DEFAULT_ROUTES, URGENT, Route
from triage.route import Prediction, Rules, decide
from triage.safety import Hit
from triage.schema import REJECT_REASONS, InboundMessage, Rejection, decode, ticket_id

EXAMPLES = int(os.environ.get("TRIAGE_PROPERTY_EXAMPLES", "300"))
PROPERTY = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
LIMIT = 65536
#: Planted in any string of a mutated message; a refusal's detail must never contain it.
MARKER = "zq.secret.7700900123@mail.example"

JSON_SCALARS = (st.none() | st.booleans() | st.integers(-(2**53), 2**53)
                | st.floats(allow_nan=False, allow_infinity=False)
                | st.text(st.characters(exclude_categories=["Cs"]), max_size=30))
JSON = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=5)
                    | st.dictionaries(st.text(max_size=10), inner, max_size=5), max_leaves=20)


def valid_message() -> dict[str, Any]:
    """An inbound message v1 that decodes."""
    return {"version": 1, "id": "1790001", "platform": "x", "kind": "dm",
            "text": "someone stole my bike", "created_at": "2026-11-21T11:59:00Z",
            "author": {"id": "u1", "handle": "@jane"},
            "account": {"handle": "@NorthShiresPolice", "type": "force"}}


def check_decoded(result: InboundMessage | Rejection) -> None:
    """What every decode result must satisfy."""
    if isinstance(result, Rejection):
        assert result.reason in REJECT_REASONS
        assert result.detail and len(result.detail) <= 1000
    else:
        assert isinstance(result, InboundMessage)
        assert result.text.strip()
        assert result.ticket_id == ticket_id(result.platform, result.id)
        assert result.received_at is not None


# --- decoding ----------------------------------------------------------------------------------

@PROPERTY
@given(body=st.binary(max_size=2000))
def test_decode_never_raises_on_arbitrary_bytes(body: bytes) -> None:
    check_decoded(decode(body, max_bytes=LIMIT, received_at=NOW))


@PROPERTY
@given(value=JSON)
def test_decode_never_raises_on_arbitrary_json(value: Any) -> None:
    result = decode(orjson.dumps(value), max_bytes=LIMIT, received_at=NOW)
    check_decoded(result)
    if not isinstance(value, dict):
        assert isinstance(result, Rejection) and result.reason == "not_json"


FIELDS = ("version", "id", "platform", "kind", "text", "created_at", "author", "account",
          "received_at", "in_reply_to", "lang", "url")
CONTENT = st.sampled_from([MARKER, f"call {MARKER}", MARKER * 3, f"@{MARKER}"])


@PROPERTY
@given(changes=st.dictionaries(st.sampled_from(FIELDS), JSON | CONTENT
                               | st.dictionaries(st.sampled_from(["id", "handle", "type",
                                                                  "name"]),
                                                 JSON_SCALARS | CONTENT, max_size=4),
                               min_size=1, max_size=4),
       dropped=st.sets(st.sampled_from(FIELDS), max_size=3))
def test_a_refusal_never_echoes_the_content(changes: dict[str, Any], dropped: set[str]) -> None:
    """Mutate a valid message's fields (personal data planted in strings): decoding never
    raises, and a refusal's detail (it goes into dead-letter headers) never holds content."""
    data = valid_message()
    data.update(changes)
    for name in dropped:
        data.pop(name, None)
    result = decode(orjson.dumps(data), max_bytes=LIMIT, received_at=NOW)
    check_decoded(result)
    if isinstance(result, Rejection):
        assert MARKER not in result.detail
        assert "7700900123" not in result.detail and "mail.example" not in result.detail


@PROPERTY
@given(extra=st.integers(1, 5000), junk=st.binary(min_size=1, max_size=1))
def test_any_body_over_the_limit_is_too_large(extra: int, junk: bytes) -> None:
    body = orjson.dumps(valid_message()) + junk * (LIMIT + extra)
    result = decode(body, max_bytes=LIMIT, received_at=NOW)
    assert isinstance(result, Rejection) and result.reason == "too_large"


SAFE_TEXT = st.text(st.characters(exclude_categories=["Cs", "Cc"]), min_size=1, max_size=300)


@PROPERTY
@given(message_id=st.from_regex(r"[A-Za-z0-9_:-]{1,60}", fullmatch=True),
       platform=st.sampled_from(["x", "facebook", "instagram", "tiktok", "myspace", "p.2-b_"]),
       kind=st.sampled_from(["mention", "reply", "comment", "dm"]),
       text=SAFE_TEXT.filter(lambda t: t.strip()))
def test_valid_messages_decode_with_their_stable_ticket_id(
        message_id: str, platform: str, kind: str, text: str) -> None:
    data = {**valid_message(), "id": message_id, "platform": platform, "kind": kind,
            "text": text}
    result = decode(orjson.dumps(data), max_bytes=LIMIT, received_at=NOW)
    assert isinstance(result, InboundMessage), result
    assert (result.id, result.platform, result.kind) == (message_id, platform, kind)
    assert result.ticket_id == ticket_id(platform, message_id)
    again = decode(orjson.dumps(data), max_bytes=LIMIT, received_at=NOW)
    assert isinstance(again, InboundMessage) and again.ticket_id == result.ticket_id


@PROPERTY
@given(a=st.tuples(st.text(min_size=1, max_size=10), st.text(min_size=1, max_size=20)),
       b=st.tuples(st.text(min_size=1, max_size=10), st.text(min_size=1, max_size=20)))
def test_ticket_ids_are_stable_and_distinct(a: tuple[str, str], b: tuple[str, str]) -> None:
    assert ticket_id(*a) == ticket_id(*a)
    if a != b and ":" not in a[0] + b[0]:
        assert ticket_id(*a) != ticket_id(*b)


# --- the routing decision ------------------------------------------------------------------------

PROBABILITY = st.floats(0.0, 1.0, allow_nan=False)
QUEUE_NAMES = st.from_regex(r"[a-z][a-z.]{0,12}", fullmatch=True)


@st.composite
def rules(draw: st.DrawFn) -> Rules:
    """Routing rules: the defaults, or every category's queue, priority and SLA drawn."""
    if draw(st.booleans()):
        routes = dict(DEFAULT_ROUTES)
    else:
        routes = {c: Route(queue=draw(QUEUE_NAMES), priority=draw(st.integers(1, 9)),
                           sla_seconds=draw(st.none() | st.floats(1, 1e6)))
                  for c in CATEGORIES}
    return Rules(routes=routes, review_queue=draw(QUEUE_NAMES | st.just("cc.review")),
                 review_below=draw(PROBABILITY),
                 urgent_threshold=draw(st.floats(0.01, 1.0, allow_nan=False)))


@st.composite
def predictions(draw: st.DrawFn) -> Prediction:
    """Probabilities over every category (as the model gives them: normalised, or not, with
    ties), and safety hits."""
    probs = {c: draw(PROBABILITY | st.sampled_from([0.0, 0.5, 1.0])) for c in CATEGORIES}
    total = sum(probs.values())
    if total > 0 and draw(st.booleans()):
        probs = {c: p / total for c, p in probs.items()}
    hits = draw(st.lists(st.builds(Hit, st.sampled_from(["weapon_now", "threat", "x"]),
                                   st.sampled_from(["urgent", "review"])), max_size=3))
    return Prediction(probabilities=probs, features=("a", "b"), safety=tuple(hits))


@PROPERTY
@given(prediction=predictions(), rule=rules())
def test_every_decision_goes_to_a_configured_queue(prediction: Prediction, rule: Rules) -> None:
    decision = decide(prediction, rule)
    configured = {r.queue for r in rule.routes.values()} | {rule.review_queue}
    assert decision.queue in configured
    assert decision.category in CATEGORIES
    assert 0.0 <= decision.confidence <= 1.0
    assert 1 <= decision.priority <= 9
    assert decision.reasons and decision.reasons[0].startswith("model:")
    assert decide(prediction, rule) == decision, "pure: the same input, the same decision"
    if decision.review:
        assert decision.queue == rule.review_queue and decision.category != URGENT
    elif decision.queue == rule.review_queue:
        assert rule.review_queue in {r.queue for r in rule.routes.values()}


@PROPERTY
@given(prediction=predictions(), rule=rules())
def test_urgent_is_never_sent_to_review(prediction: Prediction, rule: Rules) -> None:
    decision = decide(prediction, rule)
    urgent_route = rule.routes[URGENT]
    if prediction.probabilities.get(URGENT, 0.0) >= rule.urgent_threshold or any(
            h.action == "urgent" for h in prediction.safety):
        assert decision.category == URGENT
    if decision.category == URGENT:
        assert not decision.review
        assert decision.queue == urgent_route.queue
        assert decision.priority == urgent_route.priority
        assert decision.sla_seconds == urgent_route.sla_seconds


@PROPERTY
@given(prediction=predictions(), rule=rules())
def test_confident_plain_decisions_use_their_category_route(prediction: Prediction,
                                                            rule: Rules) -> None:
    assume(not prediction.safety)
    decision = decide(prediction, rule)
    route = rule.routes[decision.category]
    if decision.category != URGENT and decision.confidence >= rule.review_below:
        assert (decision.queue, decision.review) == (route.queue, False)
    elif decision.category != URGENT:
        assert (decision.queue, decision.review) == (rule.review_queue, True)
        assert decision.sla_seconds == route.sla_seconds


# --- webhook signatures ------------------------------------------------------------------------

webhooks_missing = importlib.util.find_spec("triage.webhooks") is None
needs_webhooks = pytest.mark.skipif(
    webhooks_missing, reason="triage/webhooks.py is not there yet: the signature properties "
    "run once it is")
SECRETS = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=64)


@needs_webhooks
@PROPERTY
@given(secret=SECRETS, body=st.binary(min_size=1, max_size=4096), data=st.data())
def test_any_changed_byte_of_a_signed_body_fails_verification(secret: str, body: bytes,
                                                              data: st.DataObject) -> None:
    from triage import webhooks

    x_header = webhooks.x_signature(secret, body)
    meta_header = webhooks.meta_signature(secret, body)
    assert webhooks.verify_x(secret, body, x_header)
    assert webhooks.verify_meta(secret, body, meta_header)
    index = data.draw(st.integers(0, len(body) - 1), label="index")
    flip = data.draw(st.integers(1, 255), label="xor")
    tampered = body[:index] + bytes([body[index] ^ flip]) + body[index + 1:]
    assert not webhooks.verify_x(secret, tampered, x_header)
    assert not webhooks.verify_meta(secret, tampered, meta_header)
    for shorter_or_longer in (body[:-1], body + b"\x00", body[1:]):
        assert not webhooks.verify_x(secret, shorter_or_longer, x_header)
        assert not webhooks.verify_meta(secret, shorter_or_longer, meta_header)


@needs_webhooks
@PROPERTY
@given(secret=SECRETS, other=SECRETS, body=st.binary(max_size=1024))
def test_a_signature_with_another_secret_fails(secret: str, other: str, body: bytes) -> None:
    from triage import webhooks

    assume(secret.encode() != other.encode())
    assert not webhooks.verify_x(secret, body, webhooks.x_signature(other, body))
    assert not webhooks.verify_meta(secret, body, webhooks.meta_signature(other, body))


@needs_webhooks
@PROPERTY
@given(secret=SECRETS, body=st.binary(max_size=1024), data=st.data())
def test_any_changed_character_of_a_signature_fails(secret: str, body: bytes,
                                                    data: st.DataObject) -> None:
    from triage import webhooks

    for header, verify, same in (
            (webhooks.x_signature(secret, body), webhooks.verify_x, str.__eq__),
            (webhooks.meta_signature(secret, body), webhooks.verify_meta,
             lambda a, b: a.lower() == b.lower())):  # Meta's hex is accepted in any case
        index = data.draw(st.integers(0, len(header) - 1), label="index")
        char = data.draw(st.characters(exclude_categories=["Cs"]), label="char")
        changed = header[:index] + char + header[index + 1:]
        if not same(changed.strip(), header):
            assert not verify(secret, body, changed)


@PROPERTY
@given(text=st.text(st.characters(exclude_categories=["Cs"]), max_size=200)
       | st.text(alphabet="ab'0 .\u00e9\U0001f52a-", max_size=60))
def test_the_safety_fast_path_sees_every_word(text: str) -> None:
    """scan() looks trigger words up among _tokens(): a superset of words_of()'s words."""
    from triage.safety import _tokens, words_of

    tokens = set(_tokens(text.lower()))
    for word in words_of(text):
        assert word.split("'")[0].encode("ascii") in tokens
