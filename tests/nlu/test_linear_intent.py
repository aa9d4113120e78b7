"""The LinearIntentClassifier trained, saved in a Rasa model storage, and loaded back."""

import pytest
import skops.io as sio
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.constants import INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from clinic.nlu.linear_intent import MODEL_FILE, LinearIntentClassifier, UntrustedModelFile

EXAMPLES = {
    "book_appointment": ["vorrei prenotare una visita", "posso prenotare per venerdì?", "prenota un cardiologo",
                         "I'd like to book a visit", "can I book for friday?", "book me a dermatologist",
                         "need an appointment pls", "mi serve un appuntamento"],
    "cancel_appointment": ["annulla la mia visita", "devo disdire l'appuntamento", "cancella la prenotazione",
                           "cancel my appointment", "I can't come, please cancel", "delete my booking",
                           "disdico la visita di martedì", "cancel the visit on tuesday"],
    "thank": ["grazie", "grazie mille!", "ti ringrazio", "thanks", "thank you so much", "thx",
              "grazie davvero", "many thanks"],
}
CONTEXT = ExecutionContext(GraphSchema({}), "test")


@pytest.fixture(scope="module")
def storage(tmp_path_factory):
    """A model storage holding the classifier trained on EXAMPLES."""
    storage = LocalModelStorage(tmp_path_factory.mktemp("model"))
    training = [Message(data={TEXT: text, INTENT: intent}) for intent, texts in EXAMPLES.items() for text in texts]
    LinearIntentClassifier.create({}, storage, Resource("intents"), CONTEXT).train(TrainingData(training))
    return storage


def classify(storage, text, config=None):
    loaded = LinearIntentClassifier.load({**LinearIntentClassifier.get_default_config(), **(config or {})},
                                         storage, Resource("intents"), CONTEXT)
    [processed] = loaded.process([Message(data={TEXT: text})])
    return processed


@pytest.mark.parametrize("text,intent", [("vorrei prenotare dal dermatologo", "book_appointment"),
                                         ("please cancel my booking", "cancel_appointment"),
                                         ("grazie!!", "thank")])
def test_the_saved_model_classifies_unseen_phrasings_in_both_languages(storage, text, intent):
    assert classify(storage, text).get(INTENT)["name"] == intent


def test_confidences_are_probabilities_so_the_fallback_thresholds_keep_their_meaning(storage):
    processed = classify(storage, "cancella la visita per favore")
    ranking = processed.get("intent_ranking")
    assert [r["name"] for r in ranking][0] == processed.get(INTENT)["name"] == "cancel_appointment"
    assert [r["confidence"] for r in ranking] == sorted((r["confidence"] for r in ranking), reverse=True)
    assert sum(r["confidence"] for r in ranking) == pytest.approx(1.0)
    assert len(classify(storage, "ciao", {"ranking_length": 2}).get("intent_ranking")) == 2


def test_a_model_without_a_trained_classifier_leaves_messages_alone(tmp_path):
    storage = LocalModelStorage(tmp_path)
    loaded = LinearIntentClassifier.load(LinearIntentClassifier.get_default_config(), storage,
                                         Resource("never_trained"), CONTEXT)
    message = Message(data={TEXT: "ciao"})
    assert loaded.process([message])[0].get(INTENT) is None


class Planted:
    """Stands for any object someone might slip into a model file."""


@pytest.mark.parametrize("planted", [Planted(), UntrustedModelFile("our module, but not a feature step")],
                         ids=["foreign type", "our module, not a feature step"])
def test_a_model_file_holding_other_than_sklearn_types_is_refused(tmp_path, planted):
    storage = LocalModelStorage(tmp_path)
    with storage.write_to(Resource("planted")) as directory:
        sio.dump(planted, directory / MODEL_FILE)
    with pytest.raises(UntrustedModelFile):
        LinearIntentClassifier.load(LinearIntentClassifier.get_default_config(), storage, Resource("planted"), CONTEXT)


def test_in_training_no_example_is_its_own_nearest_neighbour():
    """Otherwise every training example would be 1.0 close to its own intent, and the SVM would learn to
    trust a similarity that a new message never has."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from clinic.nlu.linear_intent import NeighbourSimilarity

    texts = ["book a cardiologist", "cancel my visit", "thanks a lot", "book a dermatologist"]
    intents = ["book_appointment", "cancel_appointment", "thank", "book_appointment"]
    vectors = TfidfVectorizer().fit_transform(texts)
    similarity = NeighbourSimilarity(neighbours=1)
    in_training = similarity.fit_transform(vectors, intents).toarray()
    as_new_messages = similarity.transform(vectors).toarray()
    cancel, thank = list(similarity.classes_).index("cancel_appointment"), list(similarity.classes_).index("thank")
    assert as_new_messages[1, cancel] == pytest.approx(1.0)  # seen as a new message, it is its own neighbour
    assert in_training[1, cancel] < 0  # in training, the only cancel example is left out: nothing is near
    assert in_training[2, thank] < 0
    assert 0 < in_training[0, 0] < 1  # "book a cardiologist" is near "book a dermatologist", not identical
