"""Meta's webhook over HTTP, for whoever receives it: the Rasa channel (`channel.py`) and the
separate ingest process (`ingest.py`) share the handshake, the checks before anything is stored
(size 413, signature 403, shape 400) and the storing itself, so both answer Meta alike.

It also holds the ingest's nudge to the channel (`POST /webhooks/whatsapp/pending`): a JSON body
`{"contacts": [ids]}` signed like Meta's webhooks but over `pending:` + the body, with the app secret,
so neither kind of signed body is accepted for the other. A nudge carries ids only; it wakes the
channel's workers, who read what is pending from the database, so a repeated nudge is harmless.

Logs carry ids and sizes only, never message content.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from sanic import response
from sanic.request import Request
from sanic.response import HTTPResponse

from clinic import wording
from clinic.db import Database
from clinic.web import read_body
from clinic.whatsapp import store
from clinic.whatsapp.types import GraphConfig, WebhookBatch
from clinic.whatsapp.webhook import SIGNATURE_HEADER, parse, sign, verify_signature

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1_000_000  # Meta's webhooks are a few KB; batches stay far below this
ACKNOWLEDGEMENT = "EVENT_RECEIVED"
PENDING_ROUTE = "/pending"
PENDING_SIGNATURE_HEADER = "X-Clinic-Signature-256"
MAX_PENDING_BODY_BYTES = 200_000
MAX_PENDING_CONTACTS = 10_000
FLOOD_SOURCE = "whatsapp:flood-limit"  # `source` of the one notice a flooding contact gets


@dataclass(frozen=True)
class Received:
    """A checked webhook, its messages stored."""

    batch: WebhookBatch
    stored: list[store.Stored]

    @property
    def latest_writes(self) -> dict[int, datetime]:
        """When each contact last wrote in this batch (for their 24-hour window)."""
        return store.latest_writes(self.stored)

    @property
    def contacts_for_bot(self) -> list[int]:
        """Contacts with something new for the bot, in the order stored."""
        return list(dict.fromkeys(s.contact_id for s in self.stored if s.for_bot))


def flood_notices(stored: Iterable[store.Stored]) -> dict[int, list[dict]]:
    """The outbox bodies of the notice (`utter_flood_limit`) each contact who just passed the flood limit
    gets (see `store`).
    """
    return {s.contact_id: [{"type": "text", "text": {"body": wording.say("utter_flood_limit", s.notice)}}]
            for s in stored if s.notice}


def handshake(request: Request, verify_token: str) -> HTTPResponse:
    """Meta's GET verification: the challenge back for the right token, 403 otherwise."""
    mode = request.args.get("hub.mode")
    token = request.args.get("hub.verify_token") or ""
    challenge = request.args.get("hub.challenge")
    if (
        mode == "subscribe"
        and challenge
        and verify_token
        and hmac.compare_digest(token.encode("utf-8", "replace"), verify_token.encode())
    ):
        logger.info("webhook verification handshake accepted")
        return response.text(challenge)
    logger.warning("webhook verification handshake refused (mode %r)", mode)
    return response.text("forbidden", status=403)


async def receive(
    request: Request,
    config: GraphConfig,
    db: Database,
    max_body_bytes: int = MAX_BODY_BYTES,
    save: Callable[[WebhookBatch], Awaitable[list[store.Stored]]] | None = None,
) -> Received | HTTPResponse:
    """Check a webhook POST and store its messages (once per wamid): the stored batch, or the
    refusal to answer (413, 403, 400, or 500 when the database failed, so that Meta delivers again).
    `save` replaces `store.save` in a worker thread (the ingest groups concurrent webhooks).
    """
    raw = await read_body(request, max_body_bytes)
    if raw is None:
        logger.warning("webhook refused: body over %d bytes", max_body_bytes)
        return response.text("payload too large", status=413)
    if not verify_signature(config.app_secret, raw, request.headers.get(SIGNATURE_HEADER)):
        logger.warning(
            "webhook refused: %s signature (%d bytes)",
            "wrong" if request.headers.get(SIGNATURE_HEADER) else "missing",
            len(raw),
        )
        return response.text("forbidden", status=403)
    try:
        batch = parse(json.loads(raw))
    except Exception as error:  # noqa: BLE001 - parsing is pure: whatever it raises, the body is malformed
        logger.warning("webhook refused: malformed body (%s, %d bytes)", type(error).__name__, len(raw))
        return response.text("bad request", status=400)
    batch.messages = [m for m in batch.messages if _ours(config, m.phone_number_id, m.wamid)]
    try:
        stored = await (save(batch) if save is not None else asyncio.to_thread(store.save, db, batch))
    except Exception as error:  # noqa: BLE001 - answer 500 so Meta delivers again; log no content
        logger.error("webhook batch not stored (%s): Meta will redeliver", type(error).__name__)
        return response.text("not stored", status=500)
    logger.info(
        "webhook stored %d new of %d messages, %d statuses",
        len(stored), len(batch.messages), len(batch.statuses),
    )
    return Received(batch, stored)


def _ours(config: GraphConfig, phone_number_id: str, wamid: str) -> bool:
    if phone_number_id and config.phone_number_id and phone_number_id != config.phone_number_id:
        logger.warning("message %s for another phone number id ignored", wamid)
        return False
    return True


# --- the ingest's nudge ----------------------------------------------------------------------------


def pending_body(contact_ids: Iterable[int]) -> bytes:
    return json.dumps({"contacts": sorted(set(contact_ids))}).encode()


def sign_pending(app_secret: str, body: bytes) -> str:
    return sign(app_secret, b"pending:" + body)


async def read_pending(request: Request, app_secret: str) -> list[int] | HTTPResponse:
    """The contact ids of a signed nudge, or the refusal (413, 403, 400)."""
    raw = await read_body(request, MAX_PENDING_BODY_BYTES)
    if raw is None:
        logger.warning("nudge refused: body over %d bytes", MAX_PENDING_BODY_BYTES)
        return response.text("payload too large", status=413)
    if not verify_signature(app_secret, b"pending:" + raw, request.headers.get(PENDING_SIGNATURE_HEADER)):
        logger.warning("nudge refused: %s signature", "wrong" if request.headers.get(PENDING_SIGNATURE_HEADER)
                       else "missing")
        return response.text("forbidden", status=403)
    try:
        contacts = json.loads(raw)["contacts"]
        if not isinstance(contacts, list) or len(contacts) > MAX_PENDING_CONTACTS:
            raise ValueError("contacts is not a list of a sensible length")
        if not all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in contacts):
            raise ValueError("a contact id is not a positive integer")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError) as error:
        logger.warning("nudge refused: malformed body (%s)", type(error).__name__)
        return response.text("bad request", status=400)
    return list(dict.fromkeys(contacts))
