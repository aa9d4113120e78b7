"""Results actions with a real seeded database: the date of birth asked only when needed, wrong
answers counted down to a lockout and a nurse, the reports released as documents or links."""

from __future__ import annotations

from datetime import date

import pytest
from rasa_sdk.events import ConversationPaused, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.handoff import ActionHandoff
from actions.results import ActionAskIdentityDateOfBirth, ActionReleaseResults, ValidateResultsForm
from clinic import consent, handoff, identity, patients, results
from clinic.models import ResultStatus
from clinic.settings import settings
from tests.actions.conftest import CHIARA, GIOVANNI, STRANGER, responses, tracker

PDF = b"%PDF-1.4\n%%EOF\n"
GIOVANNI_ID, TOMMASO_ID = 1, 3


@pytest.fixture(autouse=True)
def results_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("HANDOFF_STAFFED_HOURS", "mon-sun 00:00-23:59")
    settings.cache_clear()


def asking(sender: str = GIOVANNI, text: str = "", **slots) -> dict:
    return tracker(sender, slots={"requested_slot": "identity_date_of_birth", **slots}, text=text, intent="inform",
                   active_loop="results_form")


async def required(t) -> list[str]:
    return await ValidateResultsForm().required_slots(["identity_date_of_birth"], CollectingDispatcher(), t, {})


async def answer(text: str, sender: str = GIOVANNI, **slots) -> tuple[dict, list[str]]:
    dispatcher = CollectingDispatcher()
    got = await ValidateResultsForm().validate_identity_date_of_birth(text, dispatcher, asking(sender, text, **slots),
                                                                      {})
    return got, responses(dispatcher)


async def test_nothing_ready_asks_nothing_and_says_so(clinic_db, domain):
    assert await required(tracker(GIOVANNI, intent="request_test_results")) == []
    dispatcher = CollectingDispatcher()
    await ActionReleaseResults().run(dispatcher, tracker(GIOVANNI), domain)
    assert responses(dispatcher) == ["utter_no_results_ready"]


async def test_a_ready_report_asks_the_patients_date_of_birth(clinic_db, domain):
    results.register(clinic_db, TOMMASO_ID, "Emocromo", PDF)
    assert await required(tracker(CHIARA, intent="request_test_results")) == ["identity_date_of_birth"]
    dispatcher = CollectingDispatcher()
    await ActionAskIdentityDateOfBirth().run(dispatcher, tracker(CHIARA), domain)
    assert responses(dispatcher) == ["utter_ask_identity_date_of_birth"]
    assert dispatcher.messages[0]["patient"] == "Tommaso"


async def test_not_a_date_counts_no_attempt_a_wrong_one_does(clinic_db):
    results.register(clinic_db, GIOVANNI_ID, "Emocromo", PDF)
    assert await answer("boh") == ({"identity_date_of_birth": None}, ["utter_invalid_date_of_birth"])
    got, said = await answer("13/04/1958")
    assert got == {"identity_date_of_birth": None} and said == ["utter_identity_mismatch"]
    assert await answer("12/04/1958") == ({"identity_date_of_birth": "verified"}, [])


async def test_the_third_wrong_date_locks_and_hands_over_to_a_nurse(clinic_db, domain):
    view, _ = results.register(clinic_db, GIOVANNI_ID, "Emocromo", PDF)
    for _ in range(2):
        await answer("01/01/1960")
    assert (await answer("01/01/1960"))[0] == {"identity_date_of_birth": "locked"}
    dispatcher = CollectingDispatcher()
    events = await ActionReleaseResults().run(dispatcher, tracker(GIOVANNI, slots={"identity_date_of_birth": "locked"}),
                                              domain)
    assert responses(dispatcher) == ["utter_identity_locked", "utter_handoff"]
    assert ConversationPaused() in events
    ticket = handoff.open_ticket_for(clinic_db, patients.contact_id(clinic_db, GIOVANNI))
    assert ticket.reason == "identity_failed" and ticket.summary["result_id"] == view.id
    assert results.get(clinic_db, view.id).status is ResultStatus.ready
    # asking again while locked: no question, the lockout is said again
    assert await required(tracker(GIOVANNI, intent="request_test_results")) == []


async def test_verified_releases_documents_and_links_by_their_mode(clinic_db, domain):
    document, _ = results.register(clinic_db, GIOVANNI_ID, "Emocromo", PDF, delivery="document")
    link, _ = results.register(clinic_db, GIOVANNI_ID, "Glicemia", PDF, delivery="link")
    contact = patients.contact_id(clinic_db, GIOVANNI)
    identity.check(clinic_db, contact, GIOVANNI_ID, date(1958, 4, 12))
    assert await required(tracker(GIOVANNI, intent="request_test_results")) == []  # the check still holds
    dispatcher = CollectingDispatcher()
    events = await ActionReleaseResults().run(dispatcher, tracker(GIOVANNI), domain)
    assert [m["response"] or "custom" for m in dispatcher.messages] == [
        "utter_result_document", "custom", "utter_result_link", "utter_results_questions"]
    sent = dispatcher.messages[1]["custom"]["document"]
    assert sent["encrypted"] and sent["filename"] == f"emocromo-{document.id}.pdf"
    assert "/r/" in dispatcher.messages[2]["url"] and dispatcher.messages[2]["title"] == "Glicemia"
    assert SlotSet("delivered_result_id", str(link.id)) in events
    assert results.get(clinic_db, document.id).status is ResultStatus.delivered
    assert results.get(clinic_db, link.id).status is ResultStatus.ready  # until the page serves it


async def test_without_the_results_consent_nothing_is_asked_or_sent(clinic_db, domain):
    results.register(clinic_db, GIOVANNI_ID, "Emocromo", PDF)
    consent.decide(clinic_db, patients.contact_id(clinic_db, GIOVANNI), ["appointments"], how="test")
    assert await required(tracker(GIOVANNI, intent="request_test_results")) == []
    dispatcher = CollectingDispatcher()
    await ActionReleaseResults().run(dispatcher, tracker(GIOVANNI), domain)
    assert responses(dispatcher) == ["utter_results_need_consent"]


async def test_a_stranger_has_no_results(clinic_db, domain):
    dispatcher = CollectingDispatcher()
    consent.decide(clinic_db, patients.contact_id(clinic_db, STRANGER), consent.PURPOSES, how="test")
    await ActionReleaseResults().run(dispatcher, tracker(STRANGER), domain)
    assert responses(dispatcher) == ["utter_no_results_ready"]


RELEASED = [{"event": "session_started"}, {"event": "action", "name": "action_release_results"},
            {"event": "user", "text": "cosa vuol dire?"}]


async def test_a_question_after_a_report_goes_to_a_nurse_with_the_report(clinic_db, domain):
    dispatcher = CollectingDispatcher()
    await ActionHandoff().run(dispatcher, tracker(GIOVANNI, slots={"delivered_result_id": "7"},
                                                  intent="medical_question", events=RELEASED), domain)
    ticket = handoff.open_ticket_for(clinic_db, patients.contact_id(clinic_db, GIOVANNI))
    assert ticket.reason == "results_question" and ticket.summary["result_id"] == 7


async def test_a_request_for_a_nurse_in_a_later_session_is_not_about_the_report(clinic_db, domain):
    later = [*RELEASED, {"event": "session_started"}, {"event": "user", "text": "un infermiere"}]
    await ActionHandoff().run(CollectingDispatcher(), tracker(GIOVANNI, slots={"delivered_result_id": "7"},
                                                              intent="request_human", events=later), domain)
    ticket = handoff.open_ticket_for(clinic_db, patients.contact_id(clinic_db, GIOVANNI))
    assert ticket.reason == "request_human" and "result_id" not in ticket.summary
