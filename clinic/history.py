"""A contact's conversation history in Rasa's tracker store, cleared for erasure and retention.

Through Rasa's HTTP API (`RASA_URL`, `RASA_TOKEN`), so it works with whatever tracker store Rasa
runs (in memory, Redis): read the events, blank what they say, write them back under Rasa's own
conversation lock. (Rasa's SQL and Mongo stores only ever append on that write: a clinic running
one must clear its `events` table directly.) Every function answers False when Rasa cannot be
reached or refuses, and the caller tries again later.
"""

from __future__ import annotations

import logging
from datetime import datetime
from urllib.parse import quote

import requests

from clinic.settings import settings

logger = logging.getLogger(__name__)

TIMEOUT = 10


def _call(method: str, sender_id: str, path: str, **kwargs) -> requests.Response | None:
    url = f"{settings().rasa_url.rstrip('/')}/conversations/{quote(sender_id, safe='')}/{path}"
    params = {**kwargs.pop("params", {}), **({"token": settings().rasa_token} if settings().rasa_token else {})}
    try:
        answer = requests.request(method, url, params=params, timeout=TIMEOUT, **kwargs)
    except requests.RequestException as error:
        logger.warning("Rasa unreachable for a conversation history (%s)", type(error).__name__)
        return None
    if answer.status_code >= 300:
        logger.warning("Rasa answered %s to a conversation history request", answer.status_code)
        return None
    return answer


def forget(sender_id: str) -> bool:
    """The whole conversation is gone from Rasa (the next message starts afresh, consent included)."""
    return _call("PUT", sender_id, "tracker/events", json=[]) is not None


def forget_before(sender_id: str, before: datetime) -> bool:
    """What was said before `before` is blanked in Rasa's history; the dialogue's structure stays."""
    answer = _call("GET", sender_id, "tracker", params={"include_events": "ALL"})
    if answer is None:
        return False
    events = answer.json().get("events") or []
    cutoff = before.timestamp()
    changed = [blank(event) if event.get("timestamp", 0) < cutoff else event for event in events]
    if changed == events:
        return True
    return _call("PUT", sender_id, "tracker/events", json=changed) is not None


def blank(event: dict) -> dict:
    """The event without what the patient or the bot said (texts, entities, metadata, slot values)."""
    kind = event.get("event")
    if kind == "user":
        parse = event.get("parse_data") or {}
        return {**event, "text": None, "metadata": {},
                "parse_data": {"intent": parse.get("intent"), "entities": [], "text": None}}
    if kind == "bot":
        return {**event, "text": None, "data": {}, "metadata": {}}
    if kind == "slot" and not isinstance(event.get("value"), bool):
        return {**event, "value": None}
    if kind == "entities":
        return {**event, "entities": []}
    return event
