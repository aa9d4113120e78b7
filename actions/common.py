"""What every action shares: the database, the patient's language, the error boundary, rendering."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from clinic import metrics, wording
from clinic.db import Database, database

logger = logging.getLogger(__name__)
T = TypeVar("T")


def db() -> Database:
    return database()


async def core(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a (blocking) core call off the event loop."""
    return await asyncio.to_thread(function, *args, **kwargs)


def language(tracker: Tracker) -> str:
    return tracker.get_slot("language") or "it"


def actor(tracker: Tracker) -> str:
    """Who changes a booking, for the record: the WhatsApp contact writing."""
    return f"contact:{tracker.sender_id}"


def guarded(run: Callable[..., Awaitable[list]]) -> Callable[..., Awaitable[list]]:
    """The action boundary: an unexpected error is logged by action name only (never the tracker,
    which holds patient data) and the patient gets an apology instead of silence.
    """

    @functools.wraps(run)
    async def wrapper(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        try:
            return await run(self, dispatcher, tracker, domain)
        except Exception as error:  # noqa: BLE001 - the boundary: nothing may escape to rasa-sdk
            logger.error("action %s failed: %s", self.name(), type(error).__name__)
            metrics.action_failed(self.name())
            dispatcher.utter_message(response="utter_something_went_wrong")
            return []

    return wrapper


def render(domain: dict, response: str, lang: str, **values: Any) -> str:
    """A response's text in a language, for places that need text rather than a message
    (button titles): the wording stays in domain.yml.
    """
    return wording.pick(domain.get("responses", {}), response, lang, **values)
