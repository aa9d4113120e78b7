"""A Rasa NLU entity extractor for dates and times, on `clinic.timeparse` (no Duckling server needed).

In config.yml: `- name: clinic.nlu.time_extractor.TimeExtractor`. Each mention becomes a `time` entity whose
value is the ISO start in the clinic zone, with the grain and the exclusive end (None for an exact time) in
`additional_info`, as Duckling reports intervals. Written like Rasa 3.6's own `DucklingEntityExtractor`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import (
    ENTITIES,
    ENTITY_ATTRIBUTE_CONFIDENCE,
    ENTITY_ATTRIBUTE_END,
    ENTITY_ATTRIBUTE_START,
    ENTITY_ATTRIBUTE_TYPE,
    ENTITY_ATTRIBUTE_VALUE,
    METADATA,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message

from clinic.settings import settings
from clinic.timeparse import LANGUAGES, TimeMention, find_times

ENTITY = "time"


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR], is_trainable=False)
class TimeExtractor(GraphComponent, EntityExtractorMixin):
    """Finds dates, times, parts of day and week ranges in Italian and English messages."""

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> TimeExtractor:
        """Creates the component (nothing to train or load)."""
        return cls(config)

    def __init__(self, config: dict[str, Any]) -> None:
        self.component_config = config

    def process(self, messages: list[Message]) -> list[Message]:
        """Appends a `time` entity per mention, keeping the entities other extractors found."""
        for message in messages:
            extracted = self.add_extractor_name([_entity(m) for m in self._mentions(message)])
            message.set(ENTITIES, message.get(ENTITIES, []) + extracted, add_to_output=True)
        return messages

    def _mentions(self, message: Message) -> list[TimeMention]:
        """The mentions in the channel's language, or in whichever of Italian and English reads more of them."""
        text = message.get(TEXT) or ""
        now = _reference_time(message)
        language = str((message.get(METADATA) or {}).get("language") or "").lower()[:2]
        if language in LANGUAGES:
            return find_times(text, language, now)
        # "next tuesday at 3pm" also yields "3pm" in Italian: prefer the reading that covers more of the text.
        readings = [find_times(text, candidate, now) for candidate in LANGUAGES]  # Italian first: wins ties
        return max(readings, key=lambda mentions: sum(m.char_end - m.char_start for m in mentions))


def _reference_time(message: Message) -> datetime:
    """Like Duckling's reference time: the message's timestamp (seconds) when set, else now, in the clinic zone."""
    zone = settings().zone
    return datetime.fromtimestamp(message.time, zone) if message.time is not None else datetime.now(zone)


def _entity(mention: TimeMention) -> dict[str, Any]:
    return {
        ENTITY_ATTRIBUTE_TYPE: ENTITY,
        ENTITY_ATTRIBUTE_START: mention.char_start,
        ENTITY_ATTRIBUTE_END: mention.char_end,
        ENTITY_ATTRIBUTE_VALUE: mention.start.isoformat(),
        "additional_info": {"grain": mention.grain, "end": mention.end.isoformat() if mention.end else None},
        ENTITY_ATTRIBUTE_CONFIDENCE: 1.0,
    }
