"""A Rasa NLU entity extractor for the clinic's own words: specialty names and synonyms and
practitioners' names, read from the clinic database.

The CRF entity extractor learns from examples; this component knows every synonym and doctor the database has, also
those added after the model was trained (a new practitioner needs no retraining). It runs spaCy's
blank Italian tokenizer (splits "dall'oculista" → "dall'" "oculista") and an EntityRuler with
lower-case patterns; pretrained spaCy models are not needed. The patterns are reloaded every
`refresh_seconds`. Entities already found by another extractor on the same words are kept.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import spacy
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message

from clinic import catalog
from clinic.db import database

logger = logging.getLogger(__name__)


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR], is_trainable=False)
class ClinicTermsExtractor(GraphComponent, EntityExtractorMixin):
    """Finds `specialty` and `doctor` entities by the names in the clinic database."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {"refresh_seconds": 300}

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> ClinicTermsExtractor:
        return cls(config)

    def __init__(self, config: dict[str, Any]) -> None:
        self.component_config = config
        self._nlp = None
        self._loaded_at = float("-inf")

    def _pipeline(self):
        """The spaCy pipeline with the current terms; the last good one if the database is down."""
        if time.monotonic() - self._loaded_at < self.component_config["refresh_seconds"]:
            return self._nlp
        self._loaded_at = time.monotonic()
        try:
            terms = catalog.terms(database())
        except Exception as error:  # noqa: BLE001 - NLU must go on without the database
            logger.warning("clinic terms not loaded: %s", type(error).__name__)
            return self._nlp
        nlp = spacy.blank("it")
        ruler = nlp.add_pipe("entity_ruler", config={"phrase_matcher_attr": "LOWER"})
        ruler.add_patterns([{"label": t.entity, "pattern": t.phrase, "id": t.key} for t in terms])
        self._nlp = nlp
        return nlp

    def process(self, messages: list[Message]) -> list[Message]:
        nlp = self._pipeline()
        if nlp is None:
            return messages
        for message in messages:
            existing = message.get(ENTITIES, [])
            found = [
                {"entity": ent.label_, "start": ent.start_char, "end": ent.end_char, "value": ent.ent_id_,
                 "confidence": 1.0}
                for ent in nlp(message.get(TEXT) or "").ents
                if not any(e["entity"] == ent.label_ and e["start"] < ent.end_char and ent.start_char < e["end"]
                           for e in existing)
            ]
            message.set(ENTITIES, existing + self.add_extractor_name(found), add_to_output=True)
        return messages
