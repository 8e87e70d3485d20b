"""Platform webhooks: signatures and mapping from tables; signed deliveries through the real app."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.test_lifecycle import serving
from triage import webhooks
from triage.config import Settings as ServiceSettings
from triage.schema import InboundMessage, ticket_id
from triage.webhooks import WebhookError, map_meta, map_x

X_SECRET = "x-consumer-secret-for-tests"
META_SECRET = "meta-app-secret-for-tests"
META_VERIFY = "meta-verify-token-for-tests"
NOW = datetime(2026, 11, 21, 22, 15, tzinfo=UTC)
POLICE_X = "1111"
PAGE = "2222"
IG = "3333"


def x_sign(body: bytes, secret: str = X_SECRET) -> str:
    """X's signature, computed independently of triage.webhooks."""
    return "sha256=" + base64.b64encode(
        hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def meta_sign(body: bytes, secret: str = META_SECRET) -> str:
    """Meta's signature, computed independently of triage.webhooks."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def x_payload() -> dict[str, Any]:
    """An Account Activity delivery: a mention, a reply, a DM, and things to skip."""
    return {
        "for_user_id": POLICE_X,
        "tweet_create_events": [
            {"id_str": "1790000000000000001", "created_at": "Sat Nov 21 22:14:03 +0000 2026",
             "text": "@NorthShiresPolice someone is trying my back door right now",
             "in_reply_to_status_id_str": None, "lang": "en",
             "user": {"id_str": "98765", "screen_name": "someone", "name": "Some One"}},
            {"id_str": "1790000000000000002", "timestamp_ms": "1795299243000",
             "text": "@NorthShiresPolice thanks, truncated…", "truncated": True,
             "extended_tweet": {"full_text": "@NorthShiresPolice thanks for the quick help "
                                             "last night, great work"},
             "in_reply_to_status_id_str": "1789999999999999999",
             "user": {"id_str": "55555", "screen_name": "grateful"}},
            {"id_str": "1790000000000000003", "created_at": "Sat Nov 21 22:14:05 +0000 2026",
             "text": "Our own tweet", "user": {"id_str": POLICE_X, "screen_name": "police"}},
            {"id_str": "1790000000000000004", "created_at": "Sat Nov 21 22:14:06 +0000 2026",
             "text": "RT @NorthShiresPolice: appeal", "retweeted_status": {"id_str": "1"},
             "user": {"id_str": "77777", "screen_name": "fan"}},
        ],
        "direct_message_events": [
            {"type": "message_create", "id": "1790000000000000010",
             "created_timestamp": "1795299244000",
             "message_create": {"target": {"recipient_id": POLICE_X}, "sender_id": "98765",
                                "message_data": {"text": "my bike was stolen last night"}}},
            {"type": "message_create", "id": "1790000000000000011",
             "created_timestamp": "1795299245000",
             "message_create": {"target": {"recipient_id": "98765"}, "sender_id": POLICE_X,
                                "message_data": {"text": "our reply"}}},
        ],
        "users": {"98765": {"id": "98765", "screen_name": "someone", "name": "Some One"},
                  POLICE_X: {"id": POLICE_X, "screen_name": "NorthShiresPolice"}},
        "favorite_events": [{"id": "f1"}],
    }


def meta_page_payload() -> dict[str, Any]:
    """A page delivery: a Messenger DM, an echo, a read receipt, a comment, a visitor post."""
    return {"object": "page", "entry": [{
        "id": PAGE, "time": 1795299246000,
        "messaging": [
            {"sender": {"id": "psid-1"}, "recipient": {"id": PAGE}, "timestamp": 1795299246000,
             "message": {"mid": "m_AAA1", "text": "there is a man with a knife outside now"}},
            {"sender": {"id": PAGE}, "recipient": {"id": "psid-1"}, "timestamp": 1795299247000,
             "message": {"mid": "m_AAA2", "text": "we are on our way", "is_echo": True}},
            {"sender": {"id": "psid-1"}, "recipient": {"id": PAGE},
             "read": {"watermark": 1795299247000}},
        ],
        "changes": [
            {"field": "feed", "value": {
                "item": "comment", "verb": "add", "comment_id": "post1_c1", "post_id": "post1",
                "parent_id": "post1", "from": {"id": "fb-42", "name": "A Person"},
                "message": "why has nobody called me back about my stolen car?",
                "created_time": 1795299248}},
            {"field": "feed", "value": {
                "item": "post", "verb": "add", "post_id": "post2",
                "from": {"id": "fb-43"}, "message": "lost dog found near the park",
                "created_time": 1795299249}},
            {"field": "feed", "value": {
                "item": "comment", "verb": "add", "comment_id": "post1_c2", "post_id": "post1",
                "from": {"id": PAGE}, "message": "our own comment"}},
            {"field": "feed", "value": {"item": "reaction", "verb": "add", "post_id": "post1",
                                        "from": {"id": "fb-44"}}},
            {"field": "feed", "value": {"item": "comment", "verb": "edited",
                                        "comment_id": "post1_c1", "from": {"id": "fb-42"}}},
        ]}]}


def meta_instagram_payload() -> dict[str, Any]:
    """An Instagram delivery: a comment and a DM."""
    return {"object": "instagram", "entry": [{
        "id": IG, "time": 1795299250,
        "changes": [{"field": "comments", "value": {
            "id": "ig-c-1", "text": "great work by the officers today",
            "from": {"id": "ig-user-1", "username": "fan"},
            "media": {"id": "media-9", "media_product_type": "FEED"}}}],
        "messaging": [{"sender": {"id": "ig-user-2"}, "recipient": {"id": IG},
                       "timestamp": 1795299251000,
                       "message": {"mid": "ig-m-1", "text": "how do I get my crime number?"}}],
    }]}


# --- signatures -------------------------------------------------------------------------------

@pytest.mark.parametrize("secret,body", [
    (X_SECRET, b'{"for_user_id":"1"}'), ("another", b""), ("s", "é ✓".encode())])
def test_signatures_match_the_platforms_algorithms(secret: str, body: bytes) -> None:
    assert webhooks.x_signature(secret, body) == x_sign(body, secret)
    assert webhooks.meta_signature(secret, body) == meta_sign(body, secret)
    assert webhooks.verify_x(secret, body, x_sign(body, secret))
    assert webhooks.verify_meta(secret, body, meta_sign(body, secret))
    assert webhooks.verify_meta(secret, body, meta_sign(body, secret).upper().replace(
        "SHA256=", "sha256="))


def test_crc_response_token() -> None:
    # X's documented algorithm: base64 of HMAC-SHA256(consumer secret, crc_token)
    expected = "sha256=" + base64.b64encode(hmac.new(
        b"consumer", b"challenge-1", hashlib.sha256).digest()).decode()
    assert webhooks.x_crc_response("consumer", "challenge-1") == expected
    assert expected == "sha256=pYOF0Kjv+9HfK+5bjoVahTlH6xgI43I0pplWgy3kw0w="


BODY = b'{"object":"page","entry":[]}'


@pytest.mark.parametrize("header", [
    None, "", "sha256=", meta_sign(BODY + b" "), meta_sign(BODY, "wrong-secret"),
    meta_sign(BODY)[7:], "sha1=" + meta_sign(BODY)[7:], meta_sign(BODY)[:-1] + "0",
    "sha256=é", x_sign(BODY, META_SECRET)])
def test_meta_signature_refusals(header: str | None) -> None:
    assert not webhooks.verify_meta(META_SECRET, BODY, header)


@pytest.mark.parametrize("header", [
    None, "", x_sign(BODY + b"x"), x_sign(BODY, "wrong"), x_sign(BODY)[7:],
    meta_sign(BODY, X_SECRET), "sha256=✓"])
def test_x_signature_refusals(header: str | None) -> None:
    assert not webhooks.verify_x(X_SECRET, BODY, header)


@pytest.mark.parametrize("params,expected", [
    ({"hub.mode": "subscribe", "hub.verify_token": META_VERIFY, "hub.challenge": "12345"},
     "12345"),
    ({"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "12345"}, None),
    ({"hub.mode": "unsubscribe", "hub.verify_token": META_VERIFY, "hub.challenge": "1"}, None),
    ({"hub.mode": "subscribe", "hub.verify_token": META_VERIFY}, None),
    ({}, None),
])
def test_meta_challenge(params: dict[str, str], expected: str | None) -> None:
    assert webhooks.meta_challenge(params, META_VERIFY) == expected


# --- mapping ----------------------------------------------------------------------------------

def test_x_mapping() -> None:
    mapped = map_x(x_payload(), NOW)
    got = {(m["id"], m["kind"]) for m in mapped.messages}
    assert got == {("1790000000000000001", "mention"), ("1790000000000000002", "reply"),
                   ("1790000000000000010", "dm")}
    assert mapped.ignored == 4  # own tweet, retweet, own DM, a like
    by_id = {m["id"]: InboundMessage.model_validate(m) for m in mapped.messages}
    mention = by_id["1790000000000000001"]
    assert mention.platform == "x" and mention.author.handle == "@someone"
    assert mention.account.handle == POLICE_X and mention.account.type == "force"
    assert mention.created_at == datetime(2026, 11, 21, 22, 14, 3, tzinfo=UTC)
    assert mention.received_at == NOW and mention.lang == "en"
    reply = by_id["1790000000000000002"]
    assert reply.text.endswith("great work") and reply.in_reply_to == "1789999999999999999"
    dm = by_id["1790000000000000010"]
    assert dm.text == "my bike was stolen last night" and dm.author.id == "98765"
    assert dm.author.handle == "@someone" and dm.url is None
    assert dm.created_at == datetime.fromtimestamp(1795299244, UTC)
    # a retried delivery maps to the same ids, hence the same tickets
    again = map_x(copy.deepcopy(x_payload()), NOW)
    assert [m["id"] for m in again.messages] == [m["id"] for m in mapped.messages]


def test_meta_page_mapping() -> None:
    mapped = map_meta(meta_page_payload(), NOW)
    got = {(m["id"], m["kind"], m["platform"]) for m in mapped.messages}
    assert got == {("m_AAA1", "dm", "facebook"), ("post1_c1", "comment", "facebook"),
                   ("post2", "mention", "facebook")}
    assert mapped.ignored == 5  # echo, read receipt, own comment, reaction, edit
    by_id = {m["id"]: InboundMessage.model_validate(m) for m in mapped.messages}
    assert by_id["m_AAA1"].account.handle == PAGE and by_id["m_AAA1"].author.id == "psid-1"
    assert by_id["m_AAA1"].created_at == datetime.fromtimestamp(1795299246, UTC)
    assert by_id["post1_c1"].in_reply_to == "post1"
    assert by_id["post1_c1"].created_at == datetime.fromtimestamp(1795299248, UTC)


def test_meta_instagram_mapping() -> None:
    mapped = map_meta(meta_instagram_payload(), NOW)
    got = {(m["id"], m["kind"], m["platform"]) for m in mapped.messages}
    assert got == {("ig-c-1", "comment", "instagram"), ("ig-m-1", "dm", "instagram")}
    comment = next(InboundMessage.model_validate(m) for m in mapped.messages
                   if m["id"] == "ig-c-1")
    assert comment.author.handle == "@fan" and comment.in_reply_to == "media-9"


def test_meta_other_objects_are_ignored() -> None:
    mapped = map_meta({"object": "whatsapp_business_account", "entry": [{}, {}]}, NOW)
    assert mapped.messages == [] and mapped.ignored == 2


def _broken(base: dict[str, Any], path: list[Any], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(base)
    target: Any = data
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


@pytest.mark.parametrize("payload,where", [
    ([], "body: expected an object"),
    (_broken(x_payload(), ["for_user_id"], KeyError), "for_user_id"),
    (_broken(x_payload(), ["tweet_create_events"], "x"), "tweet_create_events: expected a list"),
    (_broken(x_payload(), ["tweet_create_events", 0, "id_str"], KeyError),
     "tweet_create_events[0].id_str"),
    (_broken(x_payload(), ["tweet_create_events", 0, "created_at"], "yesterday"),
     "tweet_create_events[0].created_at"),
    (_broken(x_payload(), ["tweet_create_events", 1, "user"], None),
     "tweet_create_events[1].user"),
    (_broken(x_payload(), ["direct_message_events", 0, "message_create", "sender_id"], None),
     "direct_message_events[0].message_create.sender_id"),
    (_broken(x_payload(), ["direct_message_events", 0, "created_timestamp"], "soon"),
     "direct_message_events[0].created_timestamp"),
])
def test_malformed_x_payloads_name_the_field(payload: Any, where: str) -> None:
    with pytest.raises(WebhookError) as caught:
        map_x(payload, NOW)
    assert where in str(caught.value)
    assert "back door" not in str(caught.value)


@pytest.mark.parametrize("payload,where", [
    ("page", "body: expected an object"),
    ({"entry": []}, "object: missing"),
    (_broken(meta_page_payload(), ["entry"], {"id": 1}), "entry: expected a list"),
    (_broken(meta_page_payload(), ["entry", 0, "id"], KeyError), "entry[0].id"),
    (_broken(meta_page_payload(), ["entry", 0, "messaging", 0, "message", "mid"], KeyError),
     "entry[0].messaging[0].message.mid"),
    (_broken(meta_page_payload(), ["entry", 0, "messaging", 0, "sender"], "x"),
     "entry[0].messaging[0].sender"),
    (_broken(meta_page_payload(), ["entry", 0, "changes", 0, "value"], []),
     "entry[0].changes[0].value"),
    (_broken(meta_page_payload(), ["entry", 0, "changes", 0, "value", "comment_id"], None),
     "entry[0].changes[0].value.comment_id"),
])
def test_malformed_meta_payloads_name_the_field(payload: Any, where: str) -> None:
    with pytest.raises(WebhookError) as caught:
        map_meta(payload, NOW)
    assert where in str(caught.value)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64) | st.text(max_size=12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["", "0", "1795299243000", POLICE_X, PAGE, "add", "comment", "post",
                       "message_create", "feed", "comments", "mentions", "page", "instagram",
                       "Sat Nov 21 22:14:03 +0000 2026", "1e400", "nan"]),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    items = (value.items() if isinstance(value, dict)
             else enumerate(value) if isinstance(value, list) else ())
    for key, child in items:
        found += _paths(child, (*prefix, key))
    return found


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_mutated_delivery_maps_or_is_refused_with_a_reason(data: st.DataObject) -> None:
    """Signed but odd payloads never crash the mapping: messages, or a WebhookError."""
    payload: Any = data.draw(st.sampled_from([x_payload, meta_page_payload,
                                              meta_instagram_payload]))()
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(payload)))
        value = data.draw(JSON)
        if not path:
            payload = value
            continue
        target = payload
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    for mapper in (map_x, map_meta):
        try:
            mapped = mapper(copy.deepcopy(payload), NOW)
        except WebhookError as exc:
            assert str(exc)
            continue
        for item in mapped.messages:
            with contextlib.suppress(ValidationError):  # the handler answers 400 then
                InboundMessage.model_validate(item)


# --- through the real service -----------------------------------------------------------------

def webhook_settings(settings_factory: Any, amqp_url: str, **overrides: Any) -> ServiceSettings:
    service: ServiceSettings = settings_factory(
        amqp_url, x_consumer_secret=X_SECRET, meta_app_secret=META_SECRET,
        meta_verify_token=META_VERIFY, **overrides)
    return service


async def wait_for(predicate: Any, timeout: float = 20.0) -> None:
    """Poll an async predicate until it is true."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.05)


@pytest.mark.broker
async def test_signed_deliveries_from_both_platforms_become_tickets_once(
        amqp_url: str, settings_factory: Any) -> None:
    settings = webhook_settings(settings_factory, amqp_url)
    x_body = json.dumps(x_payload()).encode()
    page_body = json.dumps(meta_page_payload()).encode()
    ig_body = json.dumps(meta_instagram_payload()).encode()
    async with serving(settings) as (ctx, url), aiohttp.ClientSession() as http:
        store = ctx.store
        assert store is not None
        # handshakes
        async with http.get(url + "/v1/webhooks/x", params={"crc_token": "abc"}) as r:
            assert r.status == 200
            assert (await r.json())["response_token"] == "sha256=" + base64.b64encode(
                hmac.new(X_SECRET.encode(), b"abc", hashlib.sha256).digest()).decode()
        async with http.get(url + "/v1/webhooks/x") as r:
            assert r.status == 400 and (await r.json())["error"] == "missing_crc_token"
        hub = {"hub.mode": "subscribe", "hub.verify_token": META_VERIFY,
               "hub.challenge": "1158201444"}
        async with http.get(url + "/v1/webhooks/meta", params=hub) as r:
            assert r.status == 200 and await r.text() == "1158201444"
        async with http.get(url + "/v1/webhooks/meta",
                            params={**hub, "hub.verify_token": "guess"}) as r:
            assert r.status == 403

        # real signed deliveries
        async with http.post(url + "/v1/webhooks/x", data=x_body, headers={
                "x-twitter-webhooks-signature": x_sign(x_body),
                "Content-Type": "application/json"}) as r:
            assert r.status == 200, await r.text()
            assert await r.json() == {"accepted": 3, "ignored": 4}
        for body in (page_body, ig_body):
            async with http.post(url + "/v1/webhooks/meta", data=body, headers={
                    "X-Hub-Signature-256": meta_sign(body),
                    "Content-Type": "application/json"}) as r:
                assert r.status == 200, await r.text()

        async def all_routed() -> bool:
            known = await store.known(expected)
            return len(known) == 8 and all(k.published for k in known.values())

        expected = [ticket_id("x", i) for i in ("1790000000000000001", "1790000000000000002",
                                                 "1790000000000000010")]
        expected += [ticket_id("facebook", i) for i in ("m_AAA1", "post1_c1", "post2")]
        expected += [ticket_id("instagram", i) for i in ("ig-c-1", "ig-m-1")]
        await wait_for(all_routed)

        # the platforms retry a delivery: no second ticket
        async with http.post(url + "/v1/webhooks/x", data=x_body, headers={
                "x-twitter-webhooks-signature": x_sign(x_body)}) as r:
            assert r.status == 200
        async with http.post(url + "/v1/webhooks/meta", data=page_body, headers={
                "X-Hub-Signature-256": meta_sign(page_body)}) as r:
            assert r.status == 200

        async def suppressed() -> bool:
            return bool(ctx.metrics.duplicates_suppressed._value.get() >= 6)

        await wait_for(suppressed)
        assert await store.count() == 8
        urgent = await store.get(ticket_id("facebook", "m_AAA1"))
        assert urgent is not None and urgent["category"] == "urgent"
        assert json.loads(urgent["body"])["message"]["kind"] == "dm"
        assert ctx.metrics.http_messages.labels("x")._value.get() == 6
        assert ctx.metrics.http_messages.labels("meta")._value.get() == 8


@pytest.mark.broker
async def test_refused_deliveries_publish_nothing(amqp_url: str, settings_factory: Any,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    settings = webhook_settings(settings_factory, amqp_url, max_body_bytes=4096)
    x_body = json.dumps(x_payload()).encode()
    page_body = json.dumps(meta_page_payload()).encode()
    tampered = x_body.replace(b"right now", b"last week")
    big = json.dumps({"for_user_id": POLICE_X, "padding": "x" * 5000}).encode()
    bad_event = json.dumps(_broken(meta_page_payload(),
                                   ["entry", 0, "messaging", 0, "message", "mid"],
                                   KeyError)).encode()
    cases: list[tuple[str, bytes, dict[str, str], int, str]] = [
        ("x", tampered, {"x-twitter-webhooks-signature": x_sign(x_body)}, 401,
         "bad_signature"),
        ("x", x_body, {}, 401, "bad_signature"),
        ("x", x_body, {"x-twitter-webhooks-signature": x_sign(x_body, "not-the-secret")}, 401,
         "bad_signature"),
        ("meta", page_body, {"X-Hub-Signature-256": meta_sign(page_body + b"\n")}, 401,
         "bad_signature"),
        ("meta", page_body, {"X-Hub-Signature-256": x_sign(page_body, META_SECRET)}, 401,
         "bad_signature"),
        ("x", big, {"x-twitter-webhooks-signature": x_sign(big)}, 413, "too_large"),
        ("x", b"{not json", {"x-twitter-webhooks-signature": x_sign(b"{not json")}, 400,
         "not_json"),
        ("meta", bad_event, {"X-Hub-Signature-256": meta_sign(bad_event)}, 400, "malformed"),
    ]
    async with serving(settings) as (ctx, url), aiohttp.ClientSession() as http:
        for platform, body, headers, status, error in cases:
            async with http.post(f"{url}/v1/webhooks/{platform}", data=body,
                                 headers=headers) as r:
                answer = await r.json()
                assert (r.status, answer["error"]) == (status, error), answer
        # chunked (no Content-Length) over the limit: aiohttp's own limit, still JSON 413
        async def chunks() -> Any:
            for _ in range(10):
                yield b"x" * 1000

        async with http.post(url + "/v1/webhooks/x", data=chunks(), headers={
                "x-twitter-webhooks-signature": "sha256=whatever"}) as r:
            assert r.status == 413 and (await r.json())["error"] == "too_large"
        async with http.post(url + "/v1/webhooks/meta", data=bad_event, headers={
                "X-Hub-Signature-256": meta_sign(bad_event)}) as r:
            assert (await r.json())["detail"] == (
                "entry[0].messaging[0].message.mid: missing or not an id")
        await asyncio.sleep(1.0)
        assert ctx.store is not None and await ctx.store.count() == 0
        assert ctx.metrics.http_messages.labels("x")._value.get() == 0
    assert "knife" not in caplog.text and "back door" not in caplog.text


@pytest.mark.broker
async def test_unconfigured_webhooks_are_not_found(amqp_url: str, settings_factory: Any) -> None:
    settings = settings_factory(amqp_url)
    body = json.dumps(x_payload()).encode()
    async with serving(settings) as (_, url), aiohttp.ClientSession() as http:
        async with http.post(url + "/v1/webhooks/x", data=body,
                             headers={"x-twitter-webhooks-signature": x_sign(body)}) as r:
            assert r.status == 404 and (await r.json())["error"] == "not_configured"
        async with http.get(url + "/v1/webhooks/meta", params={"hub.challenge": "1"}) as r:
            assert r.status == 404
