"""The TimeExtractor component on real Rasa messages: no training, no server."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.data import TrainingType
from rasa.shared.nlu.constants import ENTITIES, METADATA, TEXT
from rasa.shared.nlu.training_data.message import Message

from clinic.nlu.time_extractor import TimeExtractor

ROME = ZoneInfo("Europe/Rome")
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=ROME)  # a Wednesday


@pytest.fixture
def extractor(tmp_path) -> TimeExtractor:
    return TimeExtractor.create(
        {}, LocalModelStorage(tmp_path), Resource("time_extractor"), ExecutionContext(GraphSchema({}), "test")
    )


def message(text: str, language: str | None = None, **data) -> Message:
    if language:
        data[METADATA] = {"language": language}
    return Message(data={TEXT: text, **data}, time=int(NOW.timestamp()))


def test_a_part_of_day_becomes_a_time_entity_with_its_end(extractor):
    [processed] = extractor.process([message("vorrei una visita dal cardiologo martedì pomeriggio", "it")])
    assert processed.get(ENTITIES) == [{
        "entity": "time",
        "start": 33,
        "end": 51,
        "value": "2026-12-01T12:00:00+01:00",
        "additional_info": {"grain": "day", "end": "2026-12-01T18:00:00+01:00"},
        "extractor": "TimeExtractor",
        "confidence": 1.0,
    }]
    assert processed.as_dict(only_output_properties=True)[ENTITIES] == processed.get(ENTITIES)


def test_an_exact_time_has_no_end(extractor):
    [processed] = extractor.process([message("domani alle 10 e mezza va bene", "it-IT")])
    [entity] = processed.get(ENTITIES)
    assert (entity["start"], entity["end"], entity["value"]) == (0, 22, "2026-11-26T10:30:00+01:00")
    assert entity["additional_info"] == {"grain": "minute", "end": None}


def test_the_language_is_guessed_when_the_channel_does_not_say(extractor):
    english, italian = extractor.process([message("next tuesday at 3pm"), message("fra due settimane")])
    assert [(e["value"], e["end"]) for e in english.get(ENTITIES)] == [("2026-12-01T15:00:00+01:00", 19)]
    assert [e["value"] for e in italian.get(ENTITIES)] == ["2026-12-09T00:00:00+01:00"]


def test_the_channel_language_wins_over_the_guess(extractor):
    [processed] = extractor.process([message("next tuesday at 3pm", "it")])
    assert [e["value"] for e in processed.get(ENTITIES)] == ["2026-11-25T15:00:00+01:00"]  # Italian reads "3pm"


def test_other_extractors_entities_are_kept(extractor):
    specialty = {"entity": "specialty", "start": 0, "end": 11, "value": "dermatology", "extractor": "DIET"}
    [processed] = extractor.process([message("dermatologo domani", "it", entities=[specialty])])
    assert [e["entity"] for e in processed.get(ENTITIES)] == ["specialty", "time"]


def test_no_time_no_entities(extractor):
    [processed] = extractor.process([message("May I book a visit? I'm Anna, 3331234567")])
    assert processed.get(ENTITIES) == []


def test_without_a_timestamp_now_is_used(extractor):
    def midnight() -> str:
        return datetime.now(ROME).replace(hour=0, minute=0, second=0, microsecond=0).isoformat()

    before = midnight()
    [processed] = extractor.process([Message(data={TEXT: "oggi", METADATA: {"language": "it"}})])
    [entity] = processed.get(ENTITIES)
    assert entity["value"] in (before, midnight())  # today, even if the test straddles midnight


def test_the_config_name_places_it_among_the_entity_extractors():
    config = {"recipe": "default.v1", "language": "it", "policies": [], "pipeline": [
        {"name": "WhitespaceTokenizer"}, {"name": "clinic.nlu.time_extractor.TimeExtractor"}]}
    graph = DefaultV1Recipe().graph_config_for_recipe(config, {}, TrainingType.NLU)
    nodes = graph.predict_schema.nodes
    [name] = [n for n, node in nodes.items() if node.uses is TimeExtractor]
    assert nodes[name].fn == "process"
