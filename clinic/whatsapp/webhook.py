"""Meta's webhook, read: the signature check and the parser. Pure functions, no I/O.

`parse` turns one POST body (any number of entries, changes, messages and statuses) into a
`WebhookBatch`; every inbound message gets the text the bot is given (`rasa_text`):

| Meta type                              | rasa_text                                              |
| -------------------------------------- | ------------------------------------------------------ |
| text                                   | the body                                               |
| interactive button_reply / list_reply  | the reply's id (a Rasa payload such as `/affirm`)      |
| button (template quick reply)          | its payload (its text when there is no payload)        |
| image, document, audio, video, sticker | `/share_attachment{"media_type": "<type>"}` + `media`  |
| location, contacts                     | `/share_attachment{"media_type": "location"}` …        |
| request_welcome (first chat opened)    | `/greet`                                               |
| reaction                               | None: recorded, no reply                               |
| system (user_changed_number …)         | None: the contact record follows, no reply             |
| unsupported (131051), unknown (130501) | `/send_unsupported_message` (and any other type)       |
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import string
from datetime import datetime, timezone
from typing import Any

from clinic.whatsapp.types import WINDOW_REPLY_PAYLOAD, InboundMessage, Media, Sender, StatusUpdate, WebhookBatch

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hub-Signature-256"
MEDIA_TYPES = ("image", "document", "audio", "video", "sticker")
SHARED_TYPES = ("location", "contacts")
UNSUPPORTED_TEXT = "/send_unsupported_message"
_HEX = frozenset(string.hexdigits)
# What makes one message or status unusable (skipped, logged by id): missing or mistyped fields, and
# numbers no clock or integer can hold (a timestamp of 1e400).
_UNUSABLE = (KeyError, TypeError, ValueError, AttributeError, OverflowError, OSError)


class MalformedWebhook(ValueError):
    """The body is not a webhook Meta could have sent (answered 400)."""


def verify_signature(app_secret: str, raw_body: bytes, header: str | None) -> bool:
    """Whether `X-Hub-Signature-256` (`sha256=<hex HMAC of the raw body>`) is right, in constant time."""
    if not app_secret or not header:
        return False
    scheme, _, digest = header.strip().partition("=")
    if scheme.lower() != "sha256" or len(digest) != 64 or not set(digest) <= _HEX:
        return False
    expected = hmac.new(app_secret.encode(), raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), digest.lower().encode())


def sign(app_secret: str, raw_body: bytes) -> str:
    """The header value Meta would send for this body (for the sandbox and tests)."""
    return "sha256=" + hmac.new(app_secret.encode(), raw_body, hashlib.sha256).hexdigest()


def attachment_text(media_type: str) -> str:
    return "/share_attachment" + json.dumps({"media_type": media_type})


def parse(payload: Any) -> WebhookBatch:
    """Every message and status in one webhook body. Raises `MalformedWebhook` for a body that is
    not a webhook at all; a single unusable message or status is skipped (logged by id).
    """
    if not isinstance(payload, dict):
        raise MalformedWebhook("the body is not a JSON object")
    entries = payload.get("entry")
    if not isinstance(entries, list):
        raise MalformedWebhook("no entry list")
    batch = WebhookBatch()
    if payload.get("object") not in (None, "whatsapp_business_account"):
        logger.info("webhook for object %r ignored", payload.get("object"))
        return batch
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("changes", []), list):
            raise MalformedWebhook("an entry is not an object with a changes list")
        for change in entry.get("changes", []):
            if not isinstance(change, dict) or not isinstance(change.get("value", {}), dict):
                raise MalformedWebhook("a change is not an object with a value object")
            if change.get("field", "messages") != "messages":
                logger.info("webhook field %r ignored", change.get("field"))
                continue
            _parse_value(change.get("value") or {}, batch)
    return batch


def _parse_value(value: dict, batch: WebhookBatch) -> None:
    phone_number_id = str((value.get("metadata") or {}).get("phone_number_id") or "")
    contacts = [c for c in _list(value.get("contacts")) if isinstance(c, dict)]
    for error in _list(value.get("errors")):
        code = error.get("code") if isinstance(error, dict) else None
        logger.warning("webhook error %s reported by Meta", code if isinstance(code, int) else None)
    for raw in _list(value.get("messages")):
        try:
            batch.messages.append(_message(raw, contacts, phone_number_id))
        except _UNUSABLE as error:
            wamid = raw.get("id") if isinstance(raw, dict) else None
            logger.warning("unusable message %s skipped (%s)", wamid, type(error).__name__)
    for raw in _list(value.get("statuses")):
        try:
            batch.statuses.append(_status(raw))
        except _UNUSABLE as error:
            wamid = raw.get("id") if isinstance(raw, dict) else None
            logger.warning("unusable status for %s skipped (%s)", wamid, type(error).__name__)


def _str(value: Any, limit: int = 100_000) -> str | None:
    """A string field as Meta sends it, or None for anything else (a hostile body's objects or numbers, or an
    id longer than its column holds).
    """
    return value if isinstance(value, str) and len(value) <= limit else None


def _required(value: str | None) -> str:
    if not value:
        raise ValueError("a required id is missing or unusable")
    return value


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _timestamp(raw: Any) -> datetime:
    if raw in (None, ""):
        return datetime.now(timezone.utc)
    return datetime.fromtimestamp(int(raw), timezone.utc)


def _is_phone(value: Any) -> bool:
    return isinstance(value, str) and value.isdigit() and len(value) <= 20


def _sender(raw: dict, contacts: list[dict]) -> Sender:
    """Who wrote: `from` is the phone number (omitted for users who hide it), `from_user_id` the
    business-scoped user id; the `contacts` entry adds the profile name.
    """
    sent_from = raw.get("from")
    wa_id = sent_from if _is_phone(sent_from) else None
    user_id = _str(raw.get("from_user_id"), 100) or (None if _is_phone(sent_from) else _str(sent_from, 100))
    contact = _matching_contact(contacts, wa_id, user_id)
    if contact:
        wa_id = wa_id or (contact.get("wa_id") if _is_phone(contact.get("wa_id")) else None)
        user_id = user_id or _str(contact.get("user_id"), 100)
    profile = (contact or {}).get("profile")
    name = _str(profile.get("name")) if isinstance(profile, dict) else None
    if not wa_id and not user_id:
        raise ValueError("a message without a sender")
    return Sender(wa_id=wa_id, user_id=user_id or None, profile_name=name or None)


def _matching_contact(contacts: list[dict], wa_id: str | None, user_id: str | None) -> dict | None:
    for contact in contacts:
        if (wa_id and contact.get("wa_id") == wa_id) or (user_id and contact.get("user_id") == user_id):
            return contact
    return contacts[0] if len(contacts) == 1 else None


def _message(raw: dict, contacts: list[dict], phone_number_id: str) -> InboundMessage:
    wamid = _str(raw["id"], 200)
    if not wamid:
        raise ValueError("a message without a usable id")
    kind = str(raw.get("type") or "unknown")
    media = None
    new_wa_id = None
    body = raw.get(kind) if isinstance(raw.get(kind), dict) else {}
    if kind == "text":
        rasa_text = _str(body.get("body")) or ""
    elif kind == "interactive":
        reply = body.get(body.get("type") or "") or {}
        rasa_text = _str(reply.get("id")) if body.get("type") in ("button_reply", "list_reply") else None
        rasa_text = rasa_text or UNSUPPORTED_TEXT  # e.g. a flow's nfm_reply: nothing the bot can read
    elif kind == "button":
        payload = _str(body.get("payload"))
        rasa_text = None if payload == WINDOW_REPLY_PAYLOAD else payload or _str(body.get("text")) or UNSUPPORTED_TEXT
    elif kind in MEDIA_TYPES:
        media = Media(
            id=_required(_str(body["id"], 100)),
            mime_type=_str(body.get("mime_type"), 100),
            sha256=_str(body.get("sha256")),
            filename=_str(body.get("filename")),
            caption=_str(body.get("caption")),
        )
        rasa_text = attachment_text(kind)
    elif kind in SHARED_TYPES:
        rasa_text = attachment_text(kind)
    elif kind == "request_welcome":
        rasa_text = "/greet"
    elif kind == "reaction":
        rasa_text = None
    elif kind == "system":
        rasa_text = None
        if body.get("type") in ("user_changed_number", "customer_changed_number"):
            new_wa_id = body.get("wa_id") or body.get("new_wa_id")
            new_wa_id = str(new_wa_id) if _is_phone(str(new_wa_id)) else None
    else:  # unsupported (131051), legacy unknown (130501), and types newer than this code
        codes = [e.get("code") for e in raw.get("errors") or [] if isinstance(e, dict)]
        logger.info("message %s of type %s cannot be read (errors %s)", wamid, kind, codes)
        rasa_text = UNSUPPORTED_TEXT
    context = raw.get("context") if isinstance(raw.get("context"), dict) else {}
    return InboundMessage(
        wamid=wamid,
        sender=_system_sender(raw, body) if kind == "system" else _sender(raw, contacts),
        phone_number_id=phone_number_id,
        type=kind,
        timestamp=_timestamp(raw.get("timestamp")),
        rasa_text=rasa_text,
        raw=raw,
        context_wamid=_str(context.get("id"), 200) or None,
        media=media,
        new_wa_id=new_wa_id,
    )


def _system_sender(raw: dict, system: dict) -> Sender:
    """The user as they were before the change (system messages carry no `contacts`)."""
    sent_from = raw.get("from")
    wa_id = sent_from if _is_phone(sent_from) else None
    user_id = _str(system.get("previous_user_id"), 100) or _str(raw.get("from_user_id"), 100)
    if not wa_id and not user_id:
        raise ValueError("a system message without a sender")
    return Sender(wa_id=wa_id, user_id=user_id)


def _status(raw: dict) -> StatusUpdate:
    recipient = raw.get("recipient_id")
    wa_id = recipient if _is_phone(recipient) else None
    user_id = _str(raw.get("recipient_user_id"), 100) or (None if _is_phone(recipient) else _str(recipient, 100))
    errors = [e for e in _list(raw.get("errors")) if isinstance(e, dict)]
    error = errors[0] if errors else {}
    code = error.get("code")
    return StatusUpdate(
        wamid=str(raw["id"]),
        status=str(raw["status"]),
        timestamp=_timestamp(raw.get("timestamp")),
        recipient=Sender(wa_id=wa_id, user_id=user_id),
        error_code=int(code) if code is not None else None,
        error_title=_str(error.get("title")) or _str(error.get("message")),
        biz_opaque_callback_data=_str(raw.get("biz_opaque_callback_data")),
    )
