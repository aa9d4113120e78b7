from datetime import timedelta

from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

from actions.appointments import (
    ActionCancelAppointment,
    ActionConfirmAppointment,
    ActionListAppointments,
    ActionRescheduleAppointment,
    ValidateCancelForm,
)
from clinic import scheduling
from clinic.models import AppointmentReminder, AppointmentStatus, ReminderStatus, utcnow
from clinic.outreach import reminders
from clinic.whatsapp.client import WhatsAppClient
from tests.actions.conftest import CHIARA, GIOVANNI, STRANGER, next_weekday, responses, tracker
from tests.outreach.conftest import OFFLINE


def free(db, specialty="cardiology", weekday=0):
    start = next_weekday(weekday)
    return scheduling.free_slots(db, scheduling.SlotQuery(start, start + timedelta(days=1), specialty=specialty))


def book_for(db, patient_id, slot):
    return scheduling.book(db, patient_id=patient_id, slot_id=slot.id, actor="test")


async def test_lists_a_familys_upcoming_appointments_with_the_details(clinic_db):
    book_for(clinic_db, 2, free(clinic_db)[0])  # Chiara
    book_for(clinic_db, 3, free(clinic_db, "paediatrics")[0])  # Tommaso, her son
    book_for(clinic_db, 1, free(clinic_db)[1])  # Giovanni: not hers
    dispatcher = CollectingDispatcher()
    await ActionListAppointments().run(dispatcher, tracker(CHIARA), {})
    assert responses(dispatcher) == ["utter_your_appointments", "utter_appointment_line", "utter_appointment_line"]
    lines = dispatcher.messages[1:]
    assert {m["patient"] for m in lines} == {"Chiara Neri", "Tommaso Neri"}
    assert all(m["date"] and m["time"] and m["practitioner"] and m["location"] for m in lines)


async def test_no_appointments_is_said_plainly(clinic_db):
    dispatcher = CollectingDispatcher()
    await ActionListAppointments().run(dispatcher, tracker(STRANGER), {})
    assert responses(dispatcher) == ["utter_no_appointments"]


async def test_a_single_appointment_is_chosen_without_asking(clinic_db):
    appointment = book_for(clinic_db, 1, free(clinic_db)[0])
    t = tracker(GIOVANNI, slots={"appointment_id": None}, active_loop="cancel_form")
    events = await ValidateCancelForm().get_extraction_events(CollectingDispatcher(), t, {"slots": {}})
    assert SlotSet("appointment_id", str(appointment.id)) in events


async def test_cancelling_frees_the_slot_after_confirmation(clinic_db):
    slot = free(clinic_db, weekday=2)[0]
    appointment = book_for(clinic_db, 1, slot)
    dispatcher = CollectingDispatcher()
    slots = {"appointment_id": str(appointment.id), "cancel_confirmed": True}
    await ActionCancelAppointment().run(dispatcher, tracker(GIOVANNI, slots=slots), {})
    assert responses(dispatcher) == ["utter_cancelled"]
    assert scheduling.upcoming_appointments(clinic_db, [1]) == []
    assert slot.id in {s.id for s in free(clinic_db, weekday=2)}


async def test_another_contacts_appointment_cannot_be_cancelled(clinic_db):
    appointment = book_for(clinic_db, 1, free(clinic_db)[0])  # Giovanni's
    dispatcher = CollectingDispatcher()
    slots = {"appointment_id": str(appointment.id), "cancel_confirmed": True}
    await ActionCancelAppointment().run(dispatcher, tracker(CHIARA, slots=slots), {})
    assert responses(dispatcher) == ["utter_no_appointments"]
    assert scheduling.appointment(clinic_db, appointment.id).status is AppointmentStatus.booked


async def test_a_late_cancellation_offers_a_nurse_and_keeps_the_booking(clinic_db, monkeypatch):
    monkeypatch.setenv("LATE_CANCELLATION_HOURS", "240")
    scheduling.settings.cache_clear()
    appointment = book_for(clinic_db, 1, free(clinic_db)[0])
    dispatcher = CollectingDispatcher()
    slots = {"appointment_id": str(appointment.id), "cancel_confirmed": True}
    await ActionCancelAppointment().run(dispatcher, tracker(GIOVANNI, slots=slots), {})
    assert responses(dispatcher) == ["utter_too_late_to_cancel"]
    assert scheduling.appointment(clinic_db, appointment.id).status is AppointmentStatus.booked


async def test_rescheduling_moves_the_appointment(clinic_db):
    old_slot, new_slot = free(clinic_db)[:2]
    appointment = book_for(clinic_db, 1, old_slot)
    dispatcher = CollectingDispatcher()
    slots = {"appointment_id": str(appointment.id), "slot_id": str(new_slot.id), "booking_confirmed": True}
    await ActionRescheduleAppointment().run(dispatcher, tracker(GIOVANNI, slots=slots), {})
    assert responses(dispatcher) == ["utter_rescheduled", "utter_calendar_link"]  # tests/actions/test_booking.py
    [moved] = scheduling.upcoming_appointments(clinic_db, [1])
    assert (moved.slot_id, moved.rescheduled_from_id) == (new_slot.id, appointment.id)


async def test_confirming_attendance_marks_the_next_appointment_confirmed(clinic_db):
    appointment = book_for(clinic_db, 1, free(clinic_db)[0])
    dispatcher = CollectingDispatcher()
    await ActionConfirmAppointment().run(dispatcher, tracker(GIOVANNI), {})
    assert responses(dispatcher) == ["utter_appointment_confirmed"]
    assert scheduling.appointment(clinic_db, appointment.id).status is AppointmentStatus.confirmed



def remind(db, appointment) -> int:
    """Send the appointment's 72-hour reminder now, whatever the time; the reminder's id."""
    due = reminders.Due(appointment.id, 72, appointment.start_at, appointment.start_at - timedelta(hours=72), "send")
    assert reminders.settle(db, WhatsAppClient(db, OFFLINE), due, utcnow()) is ReminderStatus.sent
    with db.reading() as session:
        return session.scalars(select(AppointmentReminder.id).where(
            AppointmentReminder.appointment_id == appointment.id)).one()


async def test_a_reply_to_a_reminder_is_about_the_reminded_appointment(clinic_db):
    own = book_for(clinic_db, 2, free(clinic_db)[0])  # Chiara's, the earlier one
    sons = book_for(clinic_db, 3, free(clinic_db, "paediatrics", weekday=3)[0])  # Tommaso's, later
    remind(clinic_db, sons)
    dispatcher = CollectingDispatcher()
    await ActionConfirmAppointment().run(dispatcher, tracker(CHIARA, text="confermo"), {})
    assert responses(dispatcher) == ["utter_appointment_confirmed"]
    assert scheduling.appointment(clinic_db, sons.id).status is AppointmentStatus.confirmed
    assert scheduling.appointment(clinic_db, own.id).status is AppointmentStatus.booked


async def test_a_quoted_reminder_names_the_appointment_the_form_is_about(clinic_db):
    own = book_for(clinic_db, 2, free(clinic_db)[0])
    sons = book_for(clinic_db, 3, free(clinic_db, "paediatrics", weekday=3)[0])
    quoted = remind(clinic_db, own)
    remind(clinic_db, sons)  # the latest reminder, but the patient quotes the other one
    t = tracker(CHIARA, text="non riesco a venire", slots={"appointment_id": None}, active_loop="cancel_form")
    t.latest_message["metadata"] = {"context": {"wamid": "wamid.X", "biz_opaque_callback_data": f"reminder:{quoted}"}}
    events = await ValidateCancelForm().get_extraction_events(CollectingDispatcher(), t, {"slots": {}})
    assert SlotSet("appointment_id", str(own.id)) in events
    t = tracker(CHIARA, text="non posso venire", slots={"appointment_id": None}, active_loop="cancel_form")
    events = await ValidateCancelForm().get_extraction_events(CollectingDispatcher(), t, {"slots": {}})
    assert SlotSet("appointment_id", str(sons.id)) in events
