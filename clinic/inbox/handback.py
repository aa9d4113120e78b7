"""Handing a conversation back to the bot: Rasa's tracker gets a `resume` event and the closing line.

Rasa being down must not keep a ticket open: the failure is logged (ticket id only) and the nurse's
resolution stands; the bot then resumes when the patient next writes after a restart of the tracker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from urllib.parse import quote

import aiohttp

logger = logging.getLogger(__name__)

async def resume_bot(rasa_url: str, token: str, sender_id: str, closing: str | None, ticket_id: int) -> bool:
    """POST the `resume` event (plus the closing line, when it was sent) to Rasa; False and a warning on failure."""
    url = f"{rasa_url.rstrip('/')}/conversations/{quote(sender_id, safe='')}/tracker/events"
    now = time.time()
    events = [{"event": "resume", "timestamp": now}]
    if closing:
        events.append({"event": "bot", "text": closing, "timestamp": now})
    # The bot listens again: without this the next message's state is "after action_handoff", no rule
    # matches it and Rasa falls back (an FAQ after a handoff was answered by a second handoff).
    events.append({"event": "action", "name": "action_listen", "timestamp": now})
    params = {"token": token} if token else {}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            async with http.post(url, json=events, params=params) as answer:
                if answer.status < 300:
                    return True
                logger.warning("ticket %s: Rasa answered %s to the hand-back", ticket_id, answer.status)
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
        logger.warning("ticket %s: Rasa unreachable for the hand-back (%s)", ticket_id, type(error).__name__)
    return False
