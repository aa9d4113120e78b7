"""The RedFlagClassifier component on real Rasa messages: a red flag wins over DIET's guess."""

from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.constants import INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message

from clinic.nlu.red_flags import RedFlagClassifier


def classify(tmp_path, text: str, guessed: str) -> Message:
    component = RedFlagClassifier.create(
        {}, LocalModelStorage(tmp_path), Resource("red_flags"), ExecutionContext(GraphSchema({}), "test")
    )
    ranking = [{"name": guessed, "confidence": 0.55}, {"name": "emergency", "confidence": 0.3}]
    message = Message(data={TEXT: text, INTENT: ranking[0], "intent_ranking": ranking})
    [processed] = component.process([message])
    return processed


def test_a_red_flag_inside_a_booking_request_becomes_emergency(tmp_path):
    processed = classify(tmp_path, "vorrei prenotare, ma adesso ho un forte dolore al petto", "book_appointment")
    assert processed.get(INTENT) == {"name": "emergency", "confidence": 1.0}
    assert [r["name"] for r in processed.get("intent_ranking")] == ["emergency", "book_appointment"]


def test_a_past_symptom_keeps_the_guessed_intent(tmp_path):
    processed = classify(tmp_path, "l'anno scorso ho avuto dolore al petto, vorrei un controllo", "book_appointment")
    assert processed.get(INTENT) == {"name": "book_appointment", "confidence": 0.55}
