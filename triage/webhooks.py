"""Platform webhooks, pure: signatures, verification handshakes, and payload mapping.

No I/O here: :mod:`triage.http` reads the raw body, calls these, and publishes the result.

**X** (Account Activity API). The CRC check is ``GET ?crc_token=T``, answered with
``{"response_token": "sha256=" + base64(HMAC-SHA256(consumer secret, T))}``. Every POST carries
``x-twitter-webhooks-signature: sha256=`` + base64(HMAC-SHA256(consumer secret, raw body)).

**Meta** (Facebook pages, Instagram). Subscription is verified by
``GET ?hub.mode=subscribe&hub.verify_token=V&hub.challenge=C``, answered with ``C`` when ``V``
is the configured verify token. Every POST carries ``X-Hub-Signature-256: sha256=`` +
hex(HMAC-SHA256(app secret, raw body)).

Mapping keeps the platform's own ids as message ids, so a delivery the platform retries maps to
the same ticket id and the worker suppresses the duplicate. Events sent *by* the police account
itself (its own tweets and replies, echoes of its DMs, its own comments) are skipped, and so
are event types that are not messages to triage (likes, follows, read receipts, retweets).
``account.handle`` is the platform's id of the subscribed account and ``account.type`` is
``force``: one webhook subscription per force account.

A structurally malformed payload raises :class:`WebhookError` whose message names the field
and the problem, never the content.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

X_SIGNATURE_HEADER = "x-twitter-webhooks-signature"
META_SIGNATURE_HEADER = "X-Hub-Signature-256"
ACCOUNT_TYPE = "force"
#: Meta webhook objects and the platform name their messages get.
META_PLATFORMS = {"page": "facebook", "instagram": "instagram"}
_FEED_POSTS = ("post", "status", "photo", "video", "share")


class WebhookError(ValueError):
    """A payload that cannot be mapped; the message says where and why (never the content)."""


@dataclass
class Mapped:
    """Inbound-message-shaped dicts from one delivery, and how many events were skipped."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    ignored: int = 0


# --- signatures -----------------------------------------------------------------------------

def _hmac(secret: str, data: bytes) -> bytes:
    return hmac.new(secret.encode(), data, hashlib.sha256).digest()


def x_signature(secret: str, body: bytes) -> str:
    """The ``x-twitter-webhooks-signature`` value of a body."""
    return "sha256=" + base64.b64encode(_hmac(secret, body)).decode()


def x_crc_response(secret: str, crc_token: str) -> str:
    """The ``response_token`` answering X's CRC check."""
    return "sha256=" + base64.b64encode(_hmac(secret, crc_token.encode())).decode()


def meta_signature(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value of a body."""
    return "sha256=" + _hmac(secret, body).hex()


def _same(expected: str, presented: str | None) -> bool:
    """Constant-time comparison of a computed signature with a presented header."""
    if presented is None:
        return False
    return hmac.compare_digest(expected.encode(), presented.strip().encode("utf-8", "replace"))


def verify_x(secret: str, body: bytes, header: str | None) -> bool:
    """True when ``header`` is X's signature of exactly these bytes."""
    return _same(x_signature(secret, body), header)


def verify_meta(secret: str, body: bytes, header: str | None) -> bool:
    """True when ``header`` is Meta's signature of exactly these bytes (hex, any case)."""
    presented = header.strip().lower() if header is not None else None
    return _same(meta_signature(secret, body), presented)


def meta_challenge(params: Mapping[str, str], verify_token: str) -> str | None:
    """The challenge to echo when Meta's subscription request is genuine, else None."""
    challenge = params.get("hub.challenge")
    if params.get("hub.mode") != "subscribe" or not challenge:
        return None
    if not _same(verify_token, params.get("hub.verify_token")):
        return None
    return challenge


# --- helpers --------------------------------------------------------------------------------

def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise WebhookError(f"{where}: expected an object")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise WebhookError(f"{where}: expected a list")
    return value


def _id(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
        raise WebhookError(f"{where}: missing or not an id")
    return str(value)


def _text(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise WebhookError(f"{where}: expected a string")
    return value


def _epoch(value: Any, where: str) -> str | None:
    """Unix seconds or milliseconds (number or digit string) as ISO 8601, or None."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise WebhookError(f"{where}: expected a Unix time") from None
    if number > 1e11:  # milliseconds
        number /= 1000.0
    try:
        return datetime.fromtimestamp(number, UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        raise WebhookError(f"{where}: Unix time out of range") from None


def _x_time(value: Any, where: str) -> str | None:
    """X's ``Wed Oct 10 20:19:24 +0000 2018`` as ISO 8601, or None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise WebhookError(f"{where}: expected a date string")
    try:
        return datetime.strptime(value, "%a %b %d %H:%M:%S %z %Y").isoformat()
    except ValueError:
        raise WebhookError(f"{where}: not a date like 'Wed Oct 10 20:19:24 +0000 2018'") \
            from None


def _message(*, message_id: str, platform: str, kind: str, text: str, created_at: str | None,
             author: dict[str, Any], account: str, received_at: datetime,
             in_reply_to: str | None = None, lang: str | None = None,
             url: str | None = None) -> dict[str, Any]:
    return {"version": 1, "id": message_id, "platform": platform, "kind": kind, "text": text,
            "created_at": created_at, "author": author,
            "account": {"handle": account, "type": ACCOUNT_TYPE},
            "received_at": received_at.isoformat(), "in_reply_to": in_reply_to,
            "lang": lang, "url": url}


# --- X --------------------------------------------------------------------------------------

def map_x(payload: Any, received_at: datetime) -> Mapped:
    """X Account Activity delivery -> messages (mentions, replies, DMs to the account)."""
    payload = _obj(payload, "body")
    account = _id(payload.get("for_user_id"), "for_user_id")
    users = payload.get("users") or {}
    users = _obj(users, "users")
    out = Mapped()
    known = {"for_user_id", "users", "tweet_create_events", "direct_message_events",
             "user_has_blocked"}
    out.ignored += sum(len(v) if isinstance(v, list) else 1
                       for k, v in payload.items() if k not in known)
    for i, raw in enumerate(_list(payload.get("tweet_create_events"), "tweet_create_events")):
        where = f"tweet_create_events[{i}]"
        tweet = _obj(raw, where)
        user = _obj(tweet.get("user"), f"{where}.user")
        author_id = _id(user.get("id_str") or user.get("id"), f"{where}.user.id_str")
        if author_id == account or "retweeted_status" in tweet:
            out.ignored += 1
            continue
        extended = tweet.get("extended_tweet")
        text = _text((extended.get("full_text") if isinstance(extended, dict) else None)
                     or tweet.get("full_text") or tweet.get("text"), f"{where}.text")
        tweet_id = _id(tweet.get("id_str") or tweet.get("id"), f"{where}.id_str")
        reply_to = tweet.get("in_reply_to_status_id_str")
        created = (_epoch(tweet["timestamp_ms"], f"{where}.timestamp_ms")
                   if tweet.get("timestamp_ms") else
                   _x_time(tweet.get("created_at"), f"{where}.created_at"))
        handle = user.get("screen_name")
        out.messages.append(_message(
            message_id=tweet_id, platform="x", kind="reply" if reply_to else "mention",
            text=text, created_at=created,
            author={"id": author_id, "handle": f"@{handle}" if handle else None,
                    "name": user.get("name")},
            account=account, received_at=received_at,
            in_reply_to=_id(reply_to, f"{where}.in_reply_to_status_id_str") if reply_to
            else None,
            lang=tweet.get("lang") if isinstance(tweet.get("lang"), str) else None,
            url=f"https://x.com/i/web/status/{tweet_id}"))
    for i, raw in enumerate(_list(payload.get("direct_message_events"),
                                  "direct_message_events")):
        where = f"direct_message_events[{i}]"
        event = _obj(raw, where)
        if event.get("type") != "message_create":
            out.ignored += 1
            continue
        create = _obj(event.get("message_create"), f"{where}.message_create")
        sender = _id(create.get("sender_id"), f"{where}.message_create.sender_id")
        if sender == account:
            out.ignored += 1
            continue
        data = _obj(create.get("message_data") or {}, f"{where}.message_create.message_data")
        found = users.get(sender)
        sender_user: dict[str, Any] = found if isinstance(found, dict) else {}
        handle = sender_user.get("screen_name")
        out.messages.append(_message(
            message_id=_id(event.get("id"), f"{where}.id"), platform="x", kind="dm",
            text=_text(data.get("text"), f"{where}.message_create.message_data.text"),
            created_at=_epoch(event.get("created_timestamp"), f"{where}.created_timestamp"),
            author={"id": sender, "handle": f"@{handle}" if handle else None,
                    "name": sender_user.get("name")},
            account=account, received_at=received_at))
    return out


# --- Meta -----------------------------------------------------------------------------------

def _meta_messaging(platform: str, account: str, raw: Any, where: str, entry_time: Any,
                    received_at: datetime, out: Mapped) -> None:
    event = _obj(raw, where)
    message = event.get("message")
    if not isinstance(message, dict) or message.get("is_echo"):
        out.ignored += 1  # delivery and read receipts, postbacks, echoes of our own replies
        return
    sender = _id(_obj(event.get("sender"), f"{where}.sender").get("id"), f"{where}.sender.id")
    if sender == account:
        out.ignored += 1
        return
    reply = message.get("reply_to")
    out.messages.append(_message(
        message_id=_id(message.get("mid"), f"{where}.message.mid"), platform=platform,
        kind="dm", text=_text(message.get("text"), f"{where}.message.text"),
        created_at=_epoch(event.get("timestamp", entry_time), f"{where}.timestamp"),
        author={"id": sender}, account=account, received_at=received_at,
        in_reply_to=_id(reply["mid"], f"{where}.message.reply_to.mid")
        if isinstance(reply, dict) and reply.get("mid") else None))


def _meta_change(platform: str, account: str, raw: Any, where: str, entry_time: Any,
                 received_at: datetime, out: Mapped) -> None:
    change = _obj(raw, where)
    field_name = change.get("field")
    value = _obj(change.get("value"), f"{where}.value")
    if field_name == "feed":
        item, verb = value.get("item"), value.get("verb")
        if verb != "add" or (item != "comment" and item not in _FEED_POSTS):
            out.ignored += 1  # edits, removals, reactions, likes
            return
        kind = "comment" if item == "comment" else "mention"
        id_key = "comment_id" if kind == "comment" else "post_id"
        sender = _obj(value.get("from"), f"{where}.value.from")
        author = {"id": _id(sender.get("id"), f"{where}.value.from.id"),
                  "name": sender.get("name") if isinstance(sender.get("name"), str) else None}
        message_id = _id(value.get(id_key), f"{where}.value.{id_key}")
        text = _text(value.get("message"), f"{where}.value.message")
        created = _epoch(value.get("created_time", entry_time), f"{where}.value.created_time")
        parent = (value.get("parent_id") or value.get("post_id")) if kind == "comment" else None
    elif field_name in ("comments", "mention", "mentions"):
        if value.get("verb", "add") != "add":
            out.ignored += 1
            return
        kind = "comment" if field_name == "comments" else "mention"
        who = value.get("from")
        if isinstance(who, dict):
            author = {"id": _id(who.get("id"), f"{where}.value.from.id"),
                      "handle": f"@{who['username']}" if isinstance(
                          who.get("username"), str) else None,
                      "name": who.get("name") if isinstance(who.get("name"), str) else None}
        else:
            author = {"id": _id(value.get("sender_id") or "unknown", f"{where}.value.sender_id")}
        message_id = _id(value.get("id") or value.get("comment_id") or value.get("post_id")
                         or value.get("media_id"), f"{where}.value.id")
        text = _text(value.get("text") or value.get("message"), f"{where}.value.text")
        created = _epoch(value.get("created_time", entry_time), f"{where}.value.created_time")
        media = value.get("media")
        parent = value.get("parent_id") or (media.get("id") if isinstance(media, dict) else None)
    else:
        out.ignored += 1
        return
    if author["id"] == account:
        out.ignored += 1
        return
    out.messages.append(_message(
        message_id=message_id, platform=platform, kind=kind, text=text, created_at=created,
        author=author, account=account, received_at=received_at,
        in_reply_to=_id(parent, f"{where}.value.parent_id") if parent else None))


def map_meta(payload: Any, received_at: datetime) -> Mapped:
    """Meta delivery (``object`` page or instagram) -> messages (DMs, comments, mentions)."""
    payload = _obj(payload, "body")
    kind = payload.get("object")
    if not isinstance(kind, str):
        raise WebhookError("object: missing")
    out = Mapped()
    entries = _list(payload.get("entry"), "entry")
    platform = META_PLATFORMS.get(kind)
    if platform is None:
        out.ignored += len(entries)  # a subscription this service does not triage
        return out
    for i, raw in enumerate(entries):
        entry = _obj(raw, f"entry[{i}]")
        account = _id(entry.get("id"), f"entry[{i}].id")
        entry_time = entry.get("time")
        for j, event in enumerate(_list(entry.get("messaging"), f"entry[{i}].messaging")):
            _meta_messaging(platform, account, event, f"entry[{i}].messaging[{j}]", entry_time,
                            received_at, out)
        for j, change in enumerate(_list(entry.get("changes"), f"entry[{i}].changes")):
            _meta_change(platform, account, change, f"entry[{i}].changes[{j}]", entry_time,
                         received_at, out)
    return out
