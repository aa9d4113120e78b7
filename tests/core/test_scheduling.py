from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from clinic import scheduling
from clinic.models import Appointment, AppointmentStatus, Patient, Practitioner, Slot
from clinic.scheduling import SlotQuery, day_window
from tests.conftest import DEMO_NOW, DEMO_TODAY

ROME = ZoneInfo("Europe/Rome")


def patient_id(db, first_name="Giovanni") -> int:
    with db.transaction() as s:
        return s.scalars(select(Patient.id).where(Patient.first_name == first_name)).one()


def practitioner_id(db, key) -> int:
    with db.transaction() as s:
        return s.scalars(select(Practitioner.id).where(Practitioner.key == key)).one()


def local(slot) -> datetime:
    return slot.start_at.astimezone(ROME)


def first_free(db, specialty="cardiology", day=DEMO_TODAY, **kwargs):
    return scheduling.free_slots(db, SlotQuery(*day_window(day, day + timedelta(days=6)), specialty=specialty),
                                 now=DEMO_NOW, **kwargs)


def book(db, slot_id, who="Giovanni", **kwargs):
    return scheduling.book(db, patient_id=patient_id(db, who), slot_id=slot_id, actor="test", now=DEMO_NOW, **kwargs)


def test_free_slots_are_earliest_first_and_of_the_specialty(demo_db):
    slots = first_free(demo_db, limit=10)
    assert len(slots) == 10
    assert [s.start_at for s in slots] == sorted(s.start_at for s in slots)
    assert {s.practitioner_name for s in slots} <= {"Dott.ssa Laura Bianchi", "Dott. Marco Russo"}


def test_free_slots_skip_the_past_and_the_minimum_lead_time(demo_db, monkeypatch):
    monkeypatch.setenv("BOOKING_MIN_LEAD_MINUTES", "120")
    # Monday: Bianchi works 09:00-13:00; now is 08:00 local, so 10:00 is the first bookable start.
    slots = first_free(demo_db, day=DEMO_TODAY)
    assert local(slots[0]) == datetime(2027, 3, 1, 10, 0, tzinfo=ROME)
    monkeypatch.setenv("BOOKING_MIN_LEAD_MINUTES", "0")
    scheduling.settings.cache_clear()
    assert local(first_free(demo_db)[0]) == datetime(2027, 3, 1, 9, 0, tzinfo=ROME)


def test_free_slots_in_a_part_of_the_day(demo_db):
    # Russo works Tuesday 09-17 with lunch 13-14; the afternoon starts at noon.
    tuesday = DEMO_TODAY + timedelta(days=1)
    query = SlotQuery(*day_window(tuesday, part="afternoon"), practitioner_id=practitioner_id(demo_db, "russo"))
    slots = scheduling.free_slots(demo_db, query, now=DEMO_NOW, limit=50)
    assert [local(s).time() for s in slots] == [
        time(12), time(12, 30), time(14), time(14, 30), time(15), time(15, 30), time(16), time(16, 30)]


def test_free_slots_page_through_with_offset(demo_db):
    first, second = first_free(demo_db, limit=5), first_free(demo_db, limit=5, offset=5)
    assert first[-1].start_at <= second[0].start_at
    assert not {s.id for s in first} & {s.id for s in second}


def test_a_booked_slot_is_no_longer_offered(demo_db):
    slot = first_free(demo_db)[0]
    appointment = book(demo_db, slot.id, reason="controllo")
    assert appointment.status is AppointmentStatus.booked
    assert appointment.specialty == "cardiology"
    assert (appointment.start_at, appointment.practitioner_name) == (slot.start_at, slot.practitioner_name)
    assert slot.id not in {s.id for s in first_free(demo_db, limit=100)}


def test_booking_a_taken_slot_says_so(demo_db):
    slot = first_free(demo_db)[0]
    book(demo_db, slot.id)
    with pytest.raises(scheduling.SlotTaken):
        book(demo_db, slot.id, who="Chiara")


def test_booking_inside_the_lead_time_or_for_the_wrong_specialty_is_refused(demo_db):
    with demo_db.transaction() as s:
        soon = s.scalars(select(Slot.id).where(Slot.start_at < DEMO_NOW + timedelta(minutes=60),
                                               Slot.start_at > DEMO_NOW)).first()
    with pytest.raises(scheduling.SlotNotBookable):
        book(demo_db, soon)
    with pytest.raises(scheduling.WrongSpecialty):
        book(demo_db, first_free(demo_db)[0].id, specialty="dermatology")
    with pytest.raises(scheduling.UnknownSlot):
        book(demo_db, 10**9)


def test_the_database_itself_refuses_a_second_active_booking(any_demo_db):
    """The rule holds even for code that skips the core's checks."""
    slot = first_free(any_demo_db)[0]
    first = book(any_demo_db, slot.id)
    with pytest.raises(IntegrityError), any_demo_db.transaction() as s:
        s.add(Appointment(patient_id=first.patient_id, practitioner_id=first.practitioner_id,
                          location_id=slot.location_id, slot_id=slot.id, start_at=slot.start_at,
                          end_at=slot.end_at, created_by="rogue", changed_by="rogue"))


def test_reschedule_moves_the_booking_and_frees_the_old_slot(any_demo_db):
    old_slot, new_slot = first_free(any_demo_db)[:2]
    old = book(any_demo_db, old_slot.id)
    new = scheduling.reschedule(any_demo_db, appointment_id=old.id, new_slot_id=new_slot.id, actor="t", now=DEMO_NOW)
    assert new.rescheduled_from_id == old.id
    assert new.start_at == new_slot.start_at and new.status is AppointmentStatus.booked
    with any_demo_db.transaction() as s:
        previous = s.get(Appointment, old.id)
        assert (previous.status, previous.cancellation_reason) == (AppointmentStatus.cancelled, "rescheduled")
    assert old_slot.id in {s.id for s in first_free(any_demo_db, limit=100)}
    with pytest.raises(scheduling.AppointmentNotActive):  # the old one cannot be moved again
        scheduling.reschedule(any_demo_db, appointment_id=old.id, new_slot_id=old_slot.id, actor="t", now=DEMO_NOW)


def test_reschedule_onto_a_taken_slot_changes_nothing(demo_db):
    mine, theirs = first_free(demo_db)[:2]
    appointment = book(demo_db, mine.id)
    book(demo_db, theirs.id, who="Chiara")
    with pytest.raises(scheduling.SlotTaken):
        scheduling.reschedule(demo_db, appointment_id=appointment.id, new_slot_id=theirs.id, actor="t", now=DEMO_NOW)
    upcoming = scheduling.upcoming_appointments(demo_db, [appointment.patient_id], now=DEMO_NOW)
    assert [(a.id, a.slot_id, a.status) for a in upcoming] == [(appointment.id, mine.id, AppointmentStatus.booked)]


def test_cancel_frees_the_slot_and_keeps_the_reason(demo_db):
    slot = first_free(demo_db, day=DEMO_TODAY + timedelta(days=7))[0]
    appointment = book(demo_db, slot.id)
    cancelled = scheduling.cancel(demo_db, appointment_id=appointment.id, reason="feeling better", actor="t",
                                  now=DEMO_NOW)
    assert cancelled.status is AppointmentStatus.cancelled
    assert book(demo_db, slot.id, who="Chiara").slot_id == slot.id
    with pytest.raises(scheduling.AppointmentNotActive):
        scheduling.cancel(demo_db, appointment_id=appointment.id, reason="again", actor="t", now=DEMO_NOW)


def test_late_cancellation_is_refused_by_chat_but_staff_may(demo_db, monkeypatch):
    monkeypatch.setenv("LATE_CANCELLATION_HOURS", "24")
    slot = first_free(demo_db)[0]  # today, hours away
    appointment = book(demo_db, slot.id)
    assert scheduling.is_late_cancellation(slot.start_at, DEMO_NOW)
    with pytest.raises(scheduling.TooLateToCancel):
        scheduling.cancel(demo_db, appointment_id=appointment.id, reason="x", actor="contact:1", now=DEMO_NOW)
    assert scheduling.upcoming_appointments(demo_db, [appointment.patient_id], now=DEMO_NOW)[0].id == appointment.id
    done = scheduling.cancel(demo_db, appointment_id=appointment.id, reason="x", actor="staff:rossi",
                             allow_late=True, now=DEMO_NOW)
    assert done.status is AppointmentStatus.cancelled


def test_upcoming_lists_a_familys_appointments_in_order(demo_db):
    later, sooner = first_free(demo_db, specialty="paediatrics")[3], first_free(demo_db)[0]
    book(demo_db, later.id, who="Tommaso")
    book(demo_db, sooner.id, who="Chiara")
    ids = [patient_id(demo_db, "Chiara"), patient_id(demo_db, "Tommaso")]
    upcoming = scheduling.upcoming_appointments(demo_db, ids, now=DEMO_NOW)
    assert [(a.patient_name, a.start_at) for a in upcoming] == [
        ("Chiara Neri", sooner.start_at), ("Tommaso Neri", later.start_at)]
    assert upcoming[0].location_address and upcoming[0].practitioner_name
    assert scheduling.upcoming_appointments(demo_db, ids, now=later.end_at) == []


def test_confirm_is_idempotent_and_only_for_future_visits(demo_db):
    appointment = book(demo_db, first_free(demo_db)[0].id)
    for _ in range(2):
        assert scheduling.confirm(demo_db, appointment_id=appointment.id, actor="t", now=DEMO_NOW).status \
            is AppointmentStatus.confirmed
    other = book(demo_db, first_free(demo_db)[0].id, who="Chiara")
    with pytest.raises(scheduling.AppointmentNotActive):
        scheduling.confirm(demo_db, appointment_id=other.id, actor="t", now=other.end_at)


def test_naive_datetimes_are_refused(demo_db):
    with pytest.raises(Exception, match="naive datetime"), demo_db.transaction() as s:
        s.add(Slot(practitioner_id=1, location_id=1, start_at=datetime(2027, 3, 2, 9), end_at=datetime(2027, 3, 2, 10)))
        s.flush()


def test_times_come_back_in_utc(demo_db):
    slot = first_free(demo_db)[0]
    assert slot.start_at.tzinfo == timezone.utc
    assert date(2027, 3, 1) == slot.start_at.astimezone(ROME).date()
