from rasa_sdk.executor import CollectingDispatcher

from actions.sender import ActionGreet, ActionIdentifySender
from clinic import patients
from tests.actions.conftest import EMILY, GIOVANNI, STRANGER, responses, tracker


async def identify(t):
    return {e["name"]: e["value"] for e in await ActionIdentifySender().run(CollectingDispatcher(), t, {})}


async def test_a_known_number_is_recognised_and_greeted_by_first_name(clinic_db):
    slots = await identify(tracker(GIOVANNI, slots={"language": None}, text="buongiorno", intent="greet"))
    assert slots == {"language": "it", "first_name": "Giovanni", "known_contact": True, "consented": True}
    dispatcher = CollectingDispatcher()
    await ActionGreet().run(dispatcher, tracker(GIOVANNI, slots=slots), {})
    assert dispatcher.messages[0]["response"] == "utter_greet_known"
    assert dispatcher.messages[0]["first_name"] == "Giovanni"


async def test_the_first_message_sets_the_language_even_from_an_italian_number(clinic_db):
    slots = await identify(tracker(STRANGER, slots={"language": None}, text="hello, can I book a visit?"))
    assert slots == {"language": "en", "first_name": None, "known_contact": False, "consented": False}
    assert patients.contact_profile(clinic_db, STRANGER).language == "en"  # remembered


async def test_the_italian_prefix_only_breaks_a_tie(clinic_db):
    assert (await identify(tracker(STRANGER, slots={"language": None}, text="👍")))["language"] == "it"
    german = tracker("4915112345678", slots={"language": None}, text="👍")
    assert (await identify(german))["language"] == "it"  # the clinic's default
    assert (await identify(tracker(EMILY, slots={"language": None}, text="👍")))["language"] == "en"  # remembered


async def test_the_language_stays_until_the_patient_asks_to_change_it(clinic_db):
    assert (await identify(tracker(GIOVANNI, slots={"language": "it"}, text="ok thanks")))["language"] == "it"
    switched = await identify(tracker(GIOVANNI, slots={"language": "it"}, text="can we speak english?",
                                      intent="change_language"))
    assert switched["language"] == "en"
    assert patients.contact_profile(clinic_db, GIOVANNI).language == "en"
    back = await identify(tracker(GIOVANNI, slots={"language": "en"}, text="parla italiano", intent="change_language"))
    assert back["language"] == "it"


async def test_an_unknown_number_gets_the_general_greeting(clinic_db):
    dispatcher = CollectingDispatcher()
    await ActionGreet().run(dispatcher, tracker(STRANGER, slots={"first_name": None}), {})
    assert responses(dispatcher) == ["utter_greet"]


async def test_a_reminders_button_payload_says_nothing_about_the_language(clinic_db):
    tap = '/confirm_appointment{"appointment_id": "12"}'
    assert (await identify(tracker(STRANGER, slots={"language": None}, text=tap)))["language"] == "it"
    assert (await identify(tracker(EMILY, slots={"language": None}, text=tap)))["language"] == "en"
