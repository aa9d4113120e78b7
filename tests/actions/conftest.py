"""Actions run the rasa-sdk way: inline trackers, a collecting dispatcher, a real seeded database."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from clinic.settings import settings

ROOT = Path(__file__).resolve().parents[2]
GIOVANNI = "393330000001"  # one patient, himself
CHIARA = "393330000002"  # herself and her son Tommaso
EMILY = "447700900001"
STRANGER = "393339999999"


@pytest.fixture(scope="session")
def domain() -> dict:
    return yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))


def next_weekday(weekday: int) -> datetime:
    """Midnight (clinic time) of the next given weekday at least two days away."""
    today = datetime.now(settings().zone).replace(hour=0, minute=0, second=0, microsecond=0)
    day = today + timedelta(days=2)
    while day.weekday() != weekday:
        day += timedelta(days=1)
    return day


def tracker(
    sender: str = GIOVANNI,
    slots: dict | None = None,
    text: str = "",
    intent: str | None = None,
    entities: list | None = None,
    active_loop: str | None = None,
    events: list | None = None,
) -> Tracker:
    latest = {"text": text, "intent": {"name": intent, "confidence": 1.0} if intent else {}, "entities": entities or []}
    return Tracker(
        sender_id=sender,
        slots={"language": "it", **(slots or {})},
        latest_message=latest,
        events=events or [],
        paused=False,
        followup_action=None,
        active_loop={"name": active_loop} if active_loop else {},
        latest_action_name="action_listen",
    )


def responses(dispatcher: CollectingDispatcher) -> list[str]:
    return [m["response"] for m in dispatcher.messages]
