"""A Rasa NLU intent classifier for the messages that must never depend on a model's guess.

The intent classifier learns `emergency` and `opt_out` from examples but can miss a phrasing it has
not seen; a lexicon cannot. Red-flag symptoms (`clinic.triage`) become `emergency`; STOP words and phrases
become `opt_out`, and their opposite `opt_in` (`clinic.consent`). Placed after the intent classifier and
before FallbackClassifier in config.yml, it overrides the intent with full confidence, so the emergency
rules and the consent policy act inside forms too. An emergency wins over a STOP in one message.
"""

from __future__ import annotations

from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import (
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message

from clinic.consent import is_opt_in, is_opt_out
from clinic.triage import red_flag


def lexicon_intent(text: str) -> str | None:
    if red_flag(text) is not None:
        return "emergency"
    if is_opt_out(text):
        return "opt_out"
    if is_opt_in(text):
        return "opt_in"
    return None


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class LexiconIntentClassifier(GraphComponent):
    """Sets `emergency`, `opt_out` or `opt_in` (confidence 1.0) when a lexicon matches."""

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> LexiconIntentClassifier:
        return cls()

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            intent = lexicon_intent(message.get(TEXT) or "")
            if intent is None:
                continue
            top = {INTENT_NAME_KEY: intent, PREDICTED_CONFIDENCE_KEY: 1.0}
            others = [r for r in message.get(INTENT_RANKING_KEY) or [] if r.get(INTENT_NAME_KEY) != intent]
            message.set(INTENT, top, add_to_output=True)
            message.set(INTENT_RANKING_KEY, [top, *others], add_to_output=True)
        return messages
