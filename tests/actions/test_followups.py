"""Answering the satisfaction question: the rating is stored for the visit asked about, then the
optional comment (or none)."""

from __future__ import annotations

from datetime import timedelta

from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.followups import ActionRateVisit, ActionSaveVisitComment, ValidateSatisfactionForm
from clinic import satisfaction, scheduling
from clinic.models import utcnow
from clinic.outreach import followups
from clinic.whatsapp.client import WhatsAppClient
from tests.actions.conftest import EMILY, GIOVANNI, next_weekday, responses, tracker
from tests.outreach.conftest import OFFLINE

RULES = followups.Rules(followup_delay=timedelta(0), survey_delay=timedelta(0), grace=timedelta(hours=48),
                        no_show_after=timedelta(hours=2), quiet=None, zone=None)


def asked_about_a_visit(db) -> int:
    """Giovanni's cardiology visit, completed and asked about (the visit is days ahead: the clock is passed)."""
    monday = next_weekday(0)
    [slot, *_] = scheduling.free_slots(db, scheduling.SlotQuery(monday, monday + timedelta(days=1),
                                                                specialty="cardiology"))
    visit = scheduling.book(db, patient_id=1, slot_id=slot.id, actor="test", specialty="cardiology")
    scheduling.complete(db, appointment_id=visit.id, actor="test", now=visit.end_at)
    assert followups.run_pass(db, WhatsAppClient(db, OFFLINE), visit.end_at, RULES).sent == 2
    return visit.id


def rating(sender: str, value: str, appointment_id: int | None = None):
    entities = [{"entity": "rating", "value": value}]
    if appointment_id is not None:
        entities.append({"entity": "appointment_id", "value": str(appointment_id)})
    return tracker(sender, intent="rate_visit", entities=entities)


async def test_a_tapped_rating_is_stored_then_a_comment_is_asked_and_stored(clinic_db):
    visit = asked_about_a_visit(clinic_db)
    dispatcher = CollectingDispatcher()
    events = await ActionRateVisit().run(dispatcher, rating(GIOVANNI, "4", visit), {})
    assert events == [SlotSet("appointment_id", None), SlotSet("visit_comment", None),
                      SlotSet("rated_appointment_id", str(visit))]
    assert dispatcher.messages == []  # the form asks for the comment
    rated = tracker(GIOVANNI, slots={"rated_appointment_id": str(visit)})
    assert await ValidateSatisfactionForm().required_slots([], dispatcher, rated, {}) == ["visit_comment"]

    dispatcher = CollectingDispatcher()
    commented = tracker(GIOVANNI, slots={"rated_appointment_id": str(visit), "visit_comment": "Tutto bene"})
    assert await ActionSaveVisitComment().run(dispatcher, commented, {}) == [
        SlotSet("rated_appointment_id", None), SlotSet("visit_comment", None)]
    assert responses(dispatcher) == ["utter_comment_saved"]
    [stored] = satisfaction.responses(clinic_db, utcnow() - timedelta(minutes=5), utcnow() + timedelta(minutes=5))
    assert (stored.appointment_id, stored.rating, stored.comment) == (visit, 4, "Tutto bene")


async def test_no_comment_keeps_the_rating_alone(clinic_db):
    visit = asked_about_a_visit(clinic_db)
    await ActionRateVisit().run(CollectingDispatcher(), rating(GIOVANNI, "5"), {})  # typed: the latest question
    dispatcher = CollectingDispatcher()
    await ActionSaveVisitComment().run(
        dispatcher, tracker(GIOVANNI, slots={"rated_appointment_id": str(visit), "visit_comment": "-"}), {})
    assert responses(dispatcher) == ["utter_rating_saved"]
    [stored] = satisfaction.responses(clinic_db, utcnow() - timedelta(minutes=5), utcnow() + timedelta(minutes=5))
    assert (stored.rating, stored.comment) == (5, None)


async def test_a_rating_from_someone_not_asked_is_not_stored_and_no_comment_is_asked(clinic_db):
    visit = asked_about_a_visit(clinic_db)
    dispatcher = CollectingDispatcher()
    events = await ActionRateVisit().run(dispatcher, rating(EMILY, "1", visit), {})
    assert responses(dispatcher) == ["utter_rating_not_found"]
    assert SlotSet("rated_appointment_id", None) in events
    assert await ValidateSatisfactionForm().required_slots([], dispatcher, tracker(EMILY), {}) == []
    assert satisfaction.responses(clinic_db, utcnow() - timedelta(days=1), utcnow() + timedelta(days=1)) == []
