"""Answering a waitlist offer: the button books the freed slot; a later tap hears it has gone."""

from __future__ import annotations

from datetime import timedelta

from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

from actions.waitlist import ActionAcceptWaitlistOffer, ActionDeclineWaitlistOffer
from clinic import scheduling, waitlist
from clinic.models import WaitlistOffer, utcnow
from clinic.outreach import backfill
from clinic.whatsapp.client import WhatsAppClient
from tests.actions.conftest import EMILY, GIOVANNI, next_weekday, responses, tracker
from tests.outreach.conftest import OFFLINE

ROSA = 5
NEVER_QUIET = backfill.Rules(batch_size=2, offer_for=timedelta(hours=2), quiet=None, zone=None)


def offers_for_a_freed_monday_slot(db) -> list[int]:
    """Monday's cardiology all booked by Rosa, one visit cancelled, Giovanni then Emily waitlisted:
    both are offered the freed slot (ids in that order).
    """
    monday = next_weekday(0)
    visits = [scheduling.book(db, patient_id=ROSA, slot_id=s.id, actor="test", specialty="cardiology")
              for s in scheduling.free_slots(db, scheduling.SlotQuery(monday, monday + timedelta(days=1),
                                                                      specialty="cardiology"))]
    for patient in (1, 4):
        waitlist.join(db, patient_id=patient, specialty="cardiology", wanted_from=monday.date(),
                      wanted_until=monday.date())
    scheduling.cancel(db, appointment_id=visits[-1].id, reason="test", actor="test")
    assert backfill.run_pass(db, WhatsAppClient(db, OFFLINE), utcnow(), NEVER_QUIET).offered == 2
    with db.reading() as session:
        return list(session.scalars(select(WaitlistOffer.id).order_by(WaitlistOffer.id)))


def tapped(sender: str, intent: str, offer_id: int | None = None):
    entities = [{"entity": "offer_id", "value": str(offer_id)}] if offer_id else []
    return tracker(sender, intent=intent, entities=entities)


async def test_tapping_book_it_books_the_freed_slot_and_a_later_tap_hears_it_has_gone(clinic_db):
    giovannis, emilys = offers_for_a_freed_monday_slot(clinic_db)
    dispatcher = CollectingDispatcher()
    assert await ActionAcceptWaitlistOffer().run(dispatcher, tapped(GIOVANNI, "accept_waitlist_offer", giovannis),
                                                 {}) == []
    assert responses(dispatcher) == ["utter_booked", "utter_calendar_link"]
    assert dispatcher.messages[0]["patient"] == "Giovanni Verdi"
    assert [a.patient_id for a in scheduling.upcoming_appointments(clinic_db, [1])] == [1]

    dispatcher = CollectingDispatcher()
    await ActionAcceptWaitlistOffer().run(dispatcher, tapped(EMILY, "accept_waitlist_offer", emilys), {})
    assert responses(dispatcher) == ["utter_waitlist_offer_gone"]
    assert scheduling.upcoming_appointments(clinic_db, [4]) == []


async def test_a_typed_yes_answers_the_newest_open_offer_and_someone_elses_offer_is_unknown(clinic_db):
    giovannis, _ = offers_for_a_freed_monday_slot(clinic_db)
    dispatcher = CollectingDispatcher()
    await ActionAcceptWaitlistOffer().run(dispatcher, tapped(EMILY, "accept_waitlist_offer", giovannis), {})
    assert responses(dispatcher) == ["utter_waitlist_offer_unknown"]
    dispatcher = CollectingDispatcher()
    await ActionAcceptWaitlistOffer().run(dispatcher, tapped(EMILY, "accept_waitlist_offer"), {})
    assert responses(dispatcher) == ["utter_booked", "utter_calendar_link"]


async def test_no_thanks_passes_the_slot_on_and_keeps_the_patient_on_the_waitlist(clinic_db):
    giovannis, _ = offers_for_a_freed_monday_slot(clinic_db)
    dispatcher = CollectingDispatcher()
    await ActionDeclineWaitlistOffer().run(dispatcher, tapped(GIOVANNI, "decline_waitlist_offer", giovannis), {})
    assert responses(dispatcher) == ["utter_waitlist_offer_declined"]
    assert len(waitlist.entries(clinic_db, 1)) == 1
    dispatcher = CollectingDispatcher()
    await ActionAcceptWaitlistOffer().run(dispatcher, tapped(GIOVANNI, "accept_waitlist_offer", giovannis), {})
    assert responses(dispatcher) == ["utter_waitlist_offer_declined"]
