"""Outreach answered on the patient's phone through the real stack: a cancellation frees a slot, the
waitlisted patient gets the offer template and taps Book it, and is booked; a completed visit's
satisfaction question is answered with a rating and a comment, and both are stored."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from clinic import satisfaction, scheduling, waitlist
from clinic.db import Database
from clinic.outreach import backfill, followups
from clinic.patients import register_patient
from clinic.settings import settings
from clinic.whatsapp.client import WhatsAppClient
from tests.e2e.test_whatsapp_booking import Chat, consents, options

WAITING, FILLER, RATING, JOINING = "393471119901", "393471119902", "393471119903", "393471119904"
# Run at any hour: the test is about the answers, not about quiet hours (tested in tests/outreach).
NEVER_QUIET_BACKFILL = backfill.Rules(batch_size=50, offer_for=timedelta(hours=2), quiet=None, zone=None)
AT_ONCE = followups.Rules(followup_delay=timedelta(0), survey_delay=timedelta(0), grace=timedelta(hours=48),
                          no_show_after=timedelta(days=3650), quiet=None, zone=None)  # marks no one else's


async def deliver(db: Database, sandbox, job, now: datetime, rules) -> None:
    """One pass of an outreach job at `now`, delivered through the sandbox (by this client, or by the
    stack's channel, whose delivery loop serves the same outbox: the patient's phone is what counts).
    """
    client = WhatsAppClient(db, sandbox.config, default_language="it")
    try:
        assert any(vars(job(db, client, now, rules)).values())
        await client.deliver_due()
    finally:
        await client.close()


def patient(db: Database, chat: Chat, first_name: str) -> int:
    patient_id = register_patient(db, wa_id=chat.phone, first_name=first_name, last_name="Galli",
                                  date_of_birth=date(1980, 1, 2), language="it")
    consents(db, chat)
    return patient_id


async def test_a_freed_slot_is_offered_to_the_waitlisted_patient_who_taps_book_it(whatsapp, stack):
    db = Database(stack.database_url)
    chat = Chat(whatsapp, phone=WAITING, name="Nadia")
    waiting = patient(db, chat, "Nadia")
    filler = patient(db, Chat(whatsapp, phone=FILLER, name="Ugo"), "Ugo")
    # past the coming Monday: other tests book "lunedì mattina" with the cardiologist
    start = datetime.now(timezone.utc) + timedelta(days=8)
    day_slots = []
    while not day_slots:  # the first later day with free cardiology slots: all booked by Ugo
        window = scheduling.day_window(start.astimezone(settings().zone).date())
        day_slots = scheduling.free_slots(db, scheduling.SlotQuery(*window, specialty="cardiology"), limit=50)
        start += timedelta(days=1)
    visits = [scheduling.book(db, patient_id=filler, slot_id=s.id, actor="staff:test", specialty="cardiology")
              for s in day_slots]
    day = visits[0].start_at.astimezone(settings().zone).date()
    waitlist.join(db, patient_id=waiting, specialty="cardiology", wanted_from=day, wanted_until=day)
    freed = scheduling.cancel(db, appointment_id=visits[-1].id, reason="test", actor="staff:test")
    whatsapp.close_window(WAITING)

    await deliver(db, whatsapp, backfill.run_pass, datetime.now(timezone.utc), NEVER_QUIET_BACKFILL)
    [offer] = chat.wait_for("waitlist_offer", freed.practitioner_name)
    accept, _decline = [c["parameters"][0]["payload"] for c in offer["template"]["components"]
                        if c["type"] == "button"]
    [sent] = whatsapp.received(WAITING)
    assert sent["view"]["body"].startswith("Ciao Nadia, si è liberato un posto")
    assert [b["text"] for b in sent["view"]["buttons"]] == ["Prenota", "No, grazie"]

    whatsapp.tap_quick_reply(WAITING, accept, "Prenota", context=sent["id"])
    chat.wait_for("Prenotato", freed.practitioner_name)
    [booked] = scheduling.upcoming_appointments(db, [waiting])
    assert booked.slot_id == freed.slot_id
    assert waitlist.entries(db, waiting) == []


async def test_a_patient_rates_a_completed_visit_and_adds_a_comment(whatsapp, stack):
    db = Database(stack.database_url)
    chat = Chat(whatsapp, phone=RATING, name="Piera")
    rated = patient(db, chat, "Piera")
    start = datetime.now(timezone.utc) + timedelta(days=2)
    [slot] = scheduling.free_slots(db, scheduling.SlotQuery(start, start + timedelta(days=14),
                                                            specialty="dermatology"), limit=1)
    visit = scheduling.book(db, patient_id=rated, slot_id=slot.id, actor="staff:test", specialty="dermatology")
    scheduling.complete(db, appointment_id=visit.id, actor="staff:test", now=visit.end_at)  # the clock is passed
    whatsapp.close_window(RATING)

    await deliver(db, whatsapp, followups.run_pass, visit.end_at, AT_ONCE)
    [question] = [r for r in chat.wait_for("visit_satisfaction") if r["template"]["name"] == "visit_satisfaction"]
    four = [c["parameters"][0]["payload"] for c in question["template"]["components"] if c["type"] == "button"][3]
    assert four == followups.rating_payloads(visit.id)[3]
    received = {r["view"].get("template"): r for r in whatsapp.received(RATING)}
    assert received["followup_prescription_pickup"]["view"]["body"].startswith("Ciao Piera, la prescrizione")

    whatsapp.tap_quick_reply(RATING, four, "4", context=received["visit_satisfaction"]["id"])
    asked = chat.wait_for("commento")
    assert [o["title"] for o in options(asked)] == ["Nessun commento"]
    chat.says("Dottoressa gentilissima e molto puntuale")
    chat.wait_for("registrato il tuo commento")
    around = (visit.end_at - timedelta(days=30), visit.end_at + timedelta(days=30))
    answers = [r for r in satisfaction.responses(db, *around) if r.appointment_id == visit.id]
    assert [(a.rating, a.comment) for a in answers] == [(4, "Dottoressa gentilissima e molto puntuale")]


async def test_a_patient_joins_the_waitlist_by_asking_for_it(whatsapp, stack):
    db = Database(stack.database_url)
    chat = Chat(whatsapp, phone=JOINING, name="Sofia")
    joining = patient(db, chat, "Sofia")
    chat.says("mi mettete in lista d'attesa per il cardiologo?")
    chat.wait_for("lista d'attesa da")
    [entry] = waitlist.entries(db, joining)
    assert entry.specialty == "cardiology"
