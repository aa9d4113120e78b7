"""The LexiconIntentClassifier on real Rasa messages: a red flag or a STOP wins over the classifier's guess."""

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.constants import INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message

from clinic.nlu.lexicon import LexiconIntentClassifier


def classify(tmp_path, text: str, guessed: str) -> Message:
    component = LexiconIntentClassifier.create(
        {}, LocalModelStorage(tmp_path), Resource("lexicon"), ExecutionContext(GraphSchema({}), "test")
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


@pytest.mark.parametrize("text", ["STOP", "stop!", "Basta", "ANNULLA ISCRIZIONE", "unsubscribe 🙏",
                                  "per favore non scrivetemi più", "Please stop messaging me", "revoco il consenso"])
def test_stop_words_become_opt_out_whatever_diet_guessed(tmp_path, text):
    assert classify(tmp_path, text, "book_appointment").get(INTENT) == {"name": "opt_out", "confidence": 1.0}


@pytest.mark.parametrize("text", ["basta che sia di mattina", "stop by on Friday?", "non posso venire, annulla",
                                  "start time of my visit?"])
def test_stop_inside_an_ordinary_sentence_is_not_an_opt_out(tmp_path, text):
    assert classify(tmp_path, text, "inform").get(INTENT)["name"] == "inform"


@pytest.mark.parametrize("text", ["START", "riattiva", "potete scrivermi di nuovo", "you can message me again"])
def test_start_words_become_opt_in(tmp_path, text):
    assert classify(tmp_path, text, "greet").get(INTENT) == {"name": "opt_in", "confidence": 1.0}


def test_a_red_flag_wins_over_stop(tmp_path):
    processed = classify(tmp_path, "basta, ho un forte dolore al petto", "opt_out")
    assert processed.get(INTENT)["name"] == "emergency"
