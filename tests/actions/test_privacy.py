"""The consent step, STOP and data-rights requests through the actions, on the seeded database."""

from __future__ import annotations

from rasa_sdk.events import ConversationPaused
from rasa_sdk.executor import CollectingDispatcher

from actions.privacy import (
    ActionAskConsent,
    ActionOptOut,
    ActionRecordConsent,
    ActionRequestData,
    ValidateDataRequestForm,
)
from actions.results import ActionAskIdentityDateOfBirth
from actions.sender import ActionIdentifySender
from clinic import consent, handoff, patients, rights
from clinic.settings import settings
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


def data_request(sender: str = GIOVANNI, kind: str = "export", **slots) -> dict:
    return tracker(sender, slots={"data_request": kind, "requested_slot": "identity_date_of_birth", **slots},
                   intent="inform", active_loop="data_request_form")


async def answer(text: str, sender: str = GIOVANNI) -> tuple[dict, list[str]]:
    dispatcher = CollectingDispatcher()
    got = await ValidateDataRequestForm().validate_identity_date_of_birth(text, dispatcher, data_request(sender), {})
    return got, responses(dispatcher)


async def test_a_copy_of_the_data_is_recorded_only_after_the_date_of_birth_matches(clinic_db, domain):
    form = ValidateDataRequestForm()
    assert await form.required_slots(["identity_date_of_birth"], CollectingDispatcher(), data_request(), {}) == [
        "identity_date_of_birth"]
    dispatcher = CollectingDispatcher()
    await ActionAskIdentityDateOfBirth().run(dispatcher, data_request(), domain)
    assert responses(dispatcher) == ["utter_ask_identity_for_data_request"]
    got, said = await answer("13/04/1958")
    assert got == {"identity_date_of_birth": None} and said == ["utter_identity_mismatch"]
    dispatcher, _ = await run(ActionRequestData(), data_request())  # the check was left unfinished
    assert responses(dispatcher) == [] and rights.open_requests(clinic_db) == []

    assert await answer("12/04/1958") == ({"identity_date_of_birth": "verified"}, [])
    dispatcher, slots = await run(ActionRequestData(), data_request(identity_date_of_birth="verified"))
    assert responses(dispatcher) == ["utter_data_request_received"]
    assert slots["identity_date_of_birth"] is None and slots["data_request"] is None
    (request,) = rights.open_requests(clinic_db)
    assert (request.kind, request.phone) == ("export", GIOVANNI)
    # the check holds for a while: an erasure request right after is not asked again
    assert await form.required_slots(["identity_date_of_birth"], CollectingDispatcher(),
                                     data_request(kind="erasure"), {}) == []


async def test_a_number_without_a_patient_asks_without_a_date_of_birth(clinic_db):
    form = ValidateDataRequestForm()
    assert await form.required_slots(["identity_date_of_birth"], CollectingDispatcher(),
                                     data_request(STRANGER, "erasure"), {}) == []
    dispatcher, _ = await run(ActionRequestData(), data_request(STRANGER, "erasure"))
    assert responses(dispatcher) == ["utter_data_request_received"]
    (request,) = rights.open_requests(clinic_db)
    assert (request.kind, request.phone) == ("erasure", STRANGER)


async def test_three_wrong_dates_lock_the_request_and_hand_over_to_a_nurse(clinic_db, monkeypatch):
    monkeypatch.setenv("HANDOFF_STAFFED_HOURS", "mon-sun 00:00-23:59")
    settings.cache_clear()
    for _ in range(2):
        await answer("01/01/1960")
    assert (await answer("01/01/1960"))[0] == {"identity_date_of_birth": "locked"}
    dispatcher = CollectingDispatcher()
    events = await ActionRequestData().run(dispatcher, data_request(identity_date_of_birth="locked"), {})
    assert responses(dispatcher) == ["utter_identity_locked", "utter_handoff"]
    assert ConversationPaused() in events and rights.open_requests(clinic_db) == []
    ticket = handoff.open_ticket_for(clinic_db, patients.contact_id(clinic_db, GIOVANNI))
    assert ticket.reason == "identity_failed"
