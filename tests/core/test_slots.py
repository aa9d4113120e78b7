"""Slot generation from working hours, breaks and closures, in local time across DST."""

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from clinic import scheduling
from clinic.models import Closure, Location, Patient, Practitioner, Slot, WorkingBreak, WorkingHours
from clinic.slots import sync_slots

ROME = ZoneInfo("Europe/Rome")
SPRING_FORWARD = date(2026, 3, 29)  # 02:00 → 03:00, a Sunday
FALL_BACK = date(2026, 10, 25)  # 03:00 → 02:00, a Sunday


@pytest.fixture
def clinic(db):
    """One practitioner working every day 09:00-12:00 in 30-minute slots, pausing 10:00-10:30."""
    with db.transaction() as s:
        here, there = Location(key="a", name="A", address="Via A 1"), Location(key="b", name="B", address="Via B 2")
        doctor = Practitioner(key="doc", title="Dr", first_name="Ada", last_name="Lovelace", location=here)
        s.add_all([here, there, doctor])
        s.flush()
        s.add_all(
            WorkingHours(practitioner=doctor, location_id=here.id, weekday=weekday, start_time=time(9),
                         end_time=time(12), slot_minutes=30, breaks=[WorkingBreak(start_time=time(10),
                                                                                 end_time=time(10, 30))])
            for weekday in range(7)
        )
    return db


def local_starts(db, day):
    start, end = scheduling.day_window(day)
    with db.transaction() as s:
        slots = s.scalars(select(Slot).where(Slot.start_at >= start, Slot.start_at < end, Slot.bookable.is_(True))
                          .order_by(Slot.start_at)).all()
        return [slot.start_at.astimezone(ROME).strftime("%H:%M") for slot in slots]


def utc_starts(db, day):
    start, end = scheduling.day_window(day)
    with db.transaction() as s:
        return [x.strftime("%H:%M") for x in s.scalars(
            select(Slot.start_at).where(Slot.start_at >= start, Slot.start_at < end).order_by(Slot.start_at))]


def test_working_hours_are_cut_into_slots_around_the_break(clinic):
    sync_slots(clinic, date(2026, 6, 1), date(2026, 6, 1), ROME)
    assert local_starts(clinic, date(2026, 6, 1)) == ["09:00", "09:30", "10:30", "11:00", "11:30"]


@pytest.mark.parametrize("change", [SPRING_FORWARD, FALL_BACK])
def test_nine_oclock_stays_nine_oclock_across_dst(clinic, change):
    before, after = change - timedelta(days=1), change + timedelta(days=1)
    sync_slots(clinic, before, after, ROME)
    for day in (before, change, after):
        assert local_starts(clinic, day) == ["09:00", "09:30", "10:30", "11:00", "11:30"], day
    # The UTC instants move by an hour: that is the point of storing UTC and planning locally.
    summer, winter = ("07:00", "08:00")
    assert utc_starts(clinic, before)[0] == (winter if change == SPRING_FORWARD else summer)
    assert utc_starts(clinic, after)[0] == (summer if change == SPRING_FORWARD else winter)


def test_night_hours_skip_times_dst_removes_or_repeats(clinic):
    with clinic.transaction() as s:
        doctor = s.scalars(select(Practitioner)).one()
        s.add(WorkingHours(practitioner=doctor, location_id=doctor.location_id, weekday=6, start_time=time(1),
                           end_time=time(4), slot_minutes=30))
    sync_slots(clinic, SPRING_FORWARD, SPRING_FORWARD, ROME)
    sync_slots(clinic, FALL_BACK, FALL_BACK, ROME)
    night = lambda day: [t for t in local_starts(clinic, day) if t < "05:00"]  # noqa: E731
    assert night(SPRING_FORWARD) == ["01:00", "03:00", "03:30"]  # 01:30-02:00+ and 02:xx do not exist
    # 02:00-03:00 happens twice: its first pass is used, and 02:30-03:00 would last 90 minutes.
    assert night(FALL_BACK) == ["01:00", "01:30", "02:00", "03:00", "03:30"]
    with clinic.transaction() as s:
        for slot in s.scalars(select(Slot)):
            assert slot.end_at - slot.start_at == timedelta(minutes=30)


def test_closures_remove_slots_for_the_clinic_a_location_or_a_practitioner(clinic):
    with clinic.transaction() as s:
        doctor = s.scalars(select(Practitioner)).one()
        s.add_all([
            Closure(first_day=date(2026, 12, 25), last_day=date(2026, 12, 26), reason="Natale"),
            Closure(location_id=doctor.location_id, first_day=date(2026, 12, 28), last_day=date(2026, 12, 28)),
            Closure(practitioner_id=doctor.id, first_day=date(2026, 12, 30), last_day=date(2026, 12, 30)),
            Closure(location_id=doctor.location_id + 1, first_day=date(2026, 12, 29), last_day=date(2026, 12, 29)),
        ])
    sync_slots(clinic, date(2026, 12, 24), date(2026, 12, 31), ROME)
    open_days = {day for day in (date(2026, 12, 24) + timedelta(days=n) for n in range(8)) if local_starts(clinic, day)}
    assert open_days == {date(2026, 12, 24), date(2026, 12, 27), date(2026, 12, 29), date(2026, 12, 31)}


def test_sync_is_idempotent_and_keeps_booked_slots_when_hours_change(clinic):
    day = date(2026, 6, 1)
    assert sync_slots(clinic, day, day, ROME).added == 5
    assert sync_slots(clinic, day, day, ROME).added == 0
    with clinic.transaction() as s:
        patient = Patient(first_name="Bo", last_name="Oh", date_of_birth=date(1990, 1, 1))
        s.add(patient)
        s.flush()
        booked_slot = s.scalars(select(Slot).order_by(Slot.start_at)).first()
        patient_id, booked_id = patient.id, booked_slot.id
    now = datetime(2026, 5, 1, tzinfo=timezone.utc)
    scheduling.book(clinic, patient_id=patient_id, slot_id=booked_id, actor="t", now=now)
    with clinic.transaction() as s:  # Mondays now start at 10:30
        monday = s.scalars(select(WorkingHours).where(WorkingHours.weekday == 0)).one()
        monday.start_time, monday.breaks = time(10, 30), []
    sync_slots(clinic, day, day, ROME)
    assert local_starts(clinic, day) == ["10:30", "11:00", "11:30"]
    with clinic.transaction() as s:
        kept = s.get(Slot, booked_id)
        assert (kept.bookable, kept.start_at.astimezone(ROME).time()) == (False, time(9))
    assert scheduling.upcoming_appointments(clinic, [patient_id], now=now)[0].slot_id == booked_id
