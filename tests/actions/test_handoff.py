"""Handing over to a nurse: a ticket with what the bot understood, the patient told, the bot paused."""

from datetime import datetime

import pytest
from rasa_sdk.events import ConversationPaused
from rasa_sdk.executor import CollectingDispatcher

from actions.handoff import ActionHandoff
from clinic import handoff, patients
from clinic.settings import settings
from tests.actions.conftest import GIOVANNI, STRANGER, responses, tracker


@pytest.fixture
def nurses_on_duty(monkeypatch, clinic_db):
    if datetime.now(settings().zone).strftime("%H:%M") == "23:59":
        pytest.skip("the always-staffed spec ends at 23:59")
    monkeypatch.setenv("HANDOFF_STAFFED_HOURS", "mon-sun 00:00-23:59")
    settings.cache_clear()


async def test_a_medical_question_opens_a_ticket_and_pauses_the_bot(clinic_db, domain, nurses_on_duty):
    dispatcher = CollectingDispatcher()
    asked = tracker(GIOVANNI, slots={"specialty": "cardiology", "requested_slot": "time"}, intent="medical_question")
    events = await ActionHandoff().run(dispatcher, asked, domain)
    assert events == [ConversationPaused()]
    assert responses(dispatcher) == ["utter_handoff"] and dispatcher.messages[0]["minutes"] == 10
    ticket = handoff.open_ticket_for(clinic_db, patients.contact_id(clinic_db, GIOVANNI))
    assert (ticket.reason, ticket.priority, ticket.language) == ("medical_question", "normal", "it")
    assert ticket.summary == {"intent": "medical_question", "slots": {"specialty": "cardiology"}}


async def test_an_emergency_is_an_urgent_ticket(clinic_db, domain, nurses_on_duty):
    await ActionHandoff().run(CollectingDispatcher(), tracker(STRANGER, intent="emergency"), domain)
    ticket = handoff.open_ticket_for(clinic_db, patients.contact_id(clinic_db, STRANGER))
    assert (ticket.reason, ticket.priority) == ("emergency", "urgent")


async def test_outside_staffed_hours_the_patient_is_told_when_nurses_are_back(clinic_db, domain, monkeypatch):
    monkeypatch.setenv("HANDOFF_STAFFED_HOURS", "")
    settings.cache_clear()
    dispatcher = CollectingDispatcher()
    events = await ActionHandoff().run(dispatcher, tracker(GIOVANNI, intent="request_human"), domain)
    assert events == [ConversationPaused()]
    assert responses(dispatcher) == ["utter_handoff_after_hours"]
    assert handoff.open_ticket_for(clinic_db, patients.contact_id(clinic_db, GIOVANNI)).reason == "request_human"


@pytest.mark.parametrize(("offer", "reason"), [("utter_offer_human", "fallback"),
                                               ("utter_attachment_received", "attachment"),
                                               ("utter_too_late_to_cancel", "late_cancellation"),
                                               ("utter_greet", "request_human")])
async def test_accepting_an_offer_hands_over_for_the_offers_reason(clinic_db, domain, offer, reason):
    offered = [{"event": "bot", "text": "…", "metadata": {"utter_action": offer}},
               {"event": "user", "text": "/request_human"}]
    await ActionHandoff().run(CollectingDispatcher(), tracker(GIOVANNI, intent="request_human", events=offered),
                              domain)
    assert handoff.open_ticket_for(clinic_db, patients.contact_id(clinic_db, GIOVANNI)).reason == reason
