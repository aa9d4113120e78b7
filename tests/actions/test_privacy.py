"""The consent step and STOP through the actions, on the seeded database."""

from __future__ import annotations

from rasa_sdk.executor import CollectingDispatcher

from actions.privacy import ActionAskConsent, ActionOptOut, ActionRecordConsent
from actions.sender import ActionIdentifySender
from clinic import consent, patients
from tests.actions.conftest import GIOVANNI, STRANGER, responses, tracker


async def run(action, t) -> tuple[CollectingDispatcher, dict]:
    dispatcher = CollectingDispatcher()
    events = await action.run(dispatcher, t, {})
    return dispatcher, {e.get("name") or e["event"]: e.get("value") for e in events}


async def test_the_consent_step_shows_the_published_notice_in_the_patients_language(clinic_db):
    dispatcher, _ = await run(ActionAskConsent(), tracker(STRANGER, slots={"language": "en"}))
    notice, question = dispatcher.messages
    assert notice["text"] == consent.current_notice(clinic_db, "en").text
    assert question["response"] == "utter_ask_consent"


async def test_a_tapped_choice_is_recorded_with_how_it_came(clinic_db):
    t = tracker(STRANGER, text='/give_consent{"consent_choice": "appointments_results"}', intent="give_consent",
                entities=[{"entity": "consent_choice", "value": "appointments_results"}])
    dispatcher, slots = await run(ActionRecordConsent(), t)
    assert responses(dispatcher) == ["utter_consent_thanks"] and slots == {"consented": True}
    contact_id = patients.contact_id(clinic_db, STRANGER)
    assert consent.state(clinic_db, contact_id).granted == {"appointments", "results"}
    _, after = await run(ActionIdentifySender(), tracker(STRANGER, text="ciao"))
    assert after["consented"] is True


async def test_no_to_the_consent_step_records_a_refusal(clinic_db):
    dispatcher, slots = await run(ActionRecordConsent(), tracker(STRANGER, text="no grazie", intent="deny"))
    assert responses(dispatcher) == ["utter_consent_declined"] and slots == {"consented": False}
    state = consent.state(clinic_db, patients.contact_id(clinic_db, STRANGER))
    assert state.asked and not state.granted


async def test_stop_withdraws_consent_leaves_the_form_and_is_confirmed(clinic_db):
    contact_id = patients.contact_id(clinic_db, GIOVANNI)
    assert consent.allows(clinic_db, contact_id, "appointments")  # the demo seed consented
    dispatcher, events = await run(ActionOptOut(), tracker(GIOVANNI, text="STOP", intent="opt_out",
                                                           active_loop="booking_form"))
    assert responses(dispatcher) == ["utter_opt_out_confirmed"]
    assert events == {"active_loop": None, "requested_slot": None, "consented": False}
    assert not any(consent.allows(clinic_db, contact_id, p) for p in consent.PURPOSES)
