"""A Rasa NLU intent classifier that turns any message with a red-flag symptom into `emergency`.

DIET learns the `emergency` intent from examples but can miss a phrasing it has not seen; the
lexicon in `clinic.triage` cannot. Placed after DIET and before FallbackClassifier in config.yml,
it overrides the intent with full confidence, so the emergency rules fire inside forms too.
"""

from __future__ import annotations

from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY, PREDICTED_CONFIDENCE_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

from clinic.triage import red_flag

EMERGENCY = "emergency"
INTENT_RANKING = "intent_ranking"


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class RedFlagClassifier(GraphComponent):
    """Sets intent `emergency` (confidence 1.0) when the triage lexicon finds a red flag."""

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> RedFlagClassifier:
        return cls()

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            if red_flag(message.get(TEXT) or "") is None:
                continue
            top = {INTENT_NAME_KEY: EMERGENCY, PREDICTED_CONFIDENCE_KEY: 1.0}
            others = [r for r in message.get(INTENT_RANKING) or [] if r.get(INTENT_NAME_KEY) != EMERGENCY]
            message.set(INTENT, top, add_to_output=True)
            message.set(INTENT_RANKING, [top, *others], add_to_output=True)
        return messages
