"""A reminder on the patient's phone, and its quick replies answered by the real stack: Confirm
thanks the patient, Cancel asks and frees the slot, Reschedule moves the visit (and its reminders)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from clinic import scheduling
from clinic.db import Database
from clinic.models import AppointmentStatus
from clinic.outreach import reminders
from clinic.outreach.quiet_hours import next_allowed
from clinic.patients import register_patient
from clinic.whatsapp.client import WhatsAppClient
from tests.e2e.test_whatsapp_booking import Chat, consents, options, slot_options

PHONE = "393471117788"
MOVER = "393471117799"


async def send_reminders(db: Database, sandbox, now: datetime) -> None:
    """One pass of the outreach worker at `now`, delivered through the sandbox."""
    client = WhatsAppClient(db, sandbox.config, default_language="it")
    try:  # the stack's database also holds the visits other tests booked: they may be due too
        assert reminders.send_due(db, client, now).sent >= 1
        assert await client.deliver_due() >= 1
    finally:
        await client.close()


async def reminded_visit(db: Database, whatsapp, phone: str, first: str, last: str, born: date, specialty: str):
    """A consenting patient booked by staff 4+ days ahead, whose 72-hour reminder has just arrived:
    (chat, the visit, the reminder as the patient received it)."""
    chat = Chat(whatsapp, phone=phone, name=first)
    patient = register_patient(db, wa_id=phone, first_name=first, last_name=last, date_of_birth=born, language="it")
    consents(db, chat)
    start = datetime.now(timezone.utc) + timedelta(days=4)
    [slot] = scheduling.free_slots(db, scheduling.SlotQuery(start, start + timedelta(days=7), specialty=specialty),
                                   limit=1)
    visit = scheduling.book(db, patient_id=patient, slot_id=slot.id, actor="staff:test", specialty=specialty)
    whatsapp.close_window(phone)
    rules = reminders.Rules.from_settings()
    await send_reminders(db, whatsapp, next_allowed(visit.start_at - timedelta(hours=72), rules.quiet, rules.zone))
    [reminder] = chat.wait_for("appointment_reminder", visit.practitioner_name)
    return chat, visit, reminder


async def test_a_patient_confirms_moves_then_cancels_from_the_reminders_buttons(whatsapp, stack):
    db = Database(stack.database_url)
    chat, visit, reminder = await reminded_visit(db, whatsapp, PHONE, "Marta", "Fontana", date(1990, 5, 17),
                                                 "cardiology")
    quick_replies = [c["parameters"][0]["payload"] for c in reminder["template"]["components"] if c["type"] == "button"]
    assert quick_replies == reminders.reply_payloads(visit.id)
    [sent] = whatsapp.received(PHONE)
    assert sent["view"]["body"].startswith("Promemoria per Marta: visita ")
    assert [b["text"] for b in sent["view"]["buttons"]] == ["Confermo", "Sposta", "Annulla"]
    confirm, reschedule, cancel = quick_replies

    whatsapp.tap_quick_reply(PHONE, confirm, "Confermo", context=sent["id"])
    chat.wait_for("Grazie, ti aspettiamo")
    assert scheduling.appointment(db, visit.id).status is AppointmentStatus.confirmed

    whatsapp.tap_quick_reply(PHONE, reschedule, "Sposta", context=sent["id"])
    chat.wait_for("quando")
    # a change of mind while the rescheduling form asks for a day: Cancel leaves it for the cancellation
    whatsapp.tap_quick_reply(PHONE, cancel, "Annulla", context=sent["id"])
    asked = chat.wait_for("Vuoi disdire")
    [yes] = [o for o in options(asked) if o["id"] == "/affirm"]
    chat.taps(yes)
    chat.wait_for("disdetto")
    assert scheduling.appointment(db, visit.id).status is AppointmentStatus.cancelled
    assert visit.slot_id in {s.id for s in scheduling.free_slots(
        db, scheduling.SlotQuery(visit.start_at, visit.end_at, specialty="cardiology"))}


async def test_a_patient_moves_the_visit_from_the_reminder_and_the_old_time_is_never_reminded(whatsapp, stack):
    db = Database(stack.database_url)
    # dermatology: the other e2e tests fill cardiology, Monday mornings above all
    chat, visit, _ = await reminded_visit(db, whatsapp, MOVER, "Paolo", "Greco", date(1975, 2, 3), "dermatology")
    rules = reminders.Rules.from_settings()
    [sent] = whatsapp.received(MOVER)
    _confirm, reschedule, _cancel = reminders.reply_payloads(visit.id)

    whatsapp.tap_quick_reply(MOVER, reschedule, "Sposta", context=sent["id"])
    chat.wait_for("quando")
    later = (visit.start_at + timedelta(days=7)).astimezone(rules.zone).date()
    while not scheduling.free_slots(db, scheduling.SlotQuery(*scheduling.day_window(later), specialty="dermatology"),
                                    limit=1):  # a day the clinic works (not a weekend or a holiday such as 8/12)
        later += timedelta(days=1)
    chat.says(f"il {later.day}/{later.month}")
    offered = slot_options(chat.wait_for("/inform"))
    chat.taps(offered[0])
    [yes] = [o for o in options(chat.wait_for("Confermi")) if o["id"] == "/affirm"]
    chat.taps(yes)
    chat.wait_for("Spostato")

    old = scheduling.appointment(db, visit.id)
    [moved] = scheduling.upcoming_appointments(db, [visit.patient_id])
    assert old.status is AppointmentStatus.cancelled and moved.id != visit.id
    assert moved.start_at.astimezone(rules.zone).date() == later
    assert visit.slot_id in {s.id for s in scheduling.free_slots(
        db, scheduling.SlotQuery(visit.start_at, visit.end_at, specialty="dermatology"))}
    # the old time's 24 h reminder never goes; the new time's reminders do, at their own moments
    due = reminders.due_now(db, visit.start_at - timedelta(hours=24), rules)
    assert visit.id not in {d.appointment_id for d in due}
    due_new = reminders.due_now(db, moved.start_at - timedelta(hours=24), rules)
    assert moved.id in {d.appointment_id for d in due_new if d.verdict == "send"}
