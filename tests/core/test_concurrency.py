"""Double booking is impossible, not unlikely: real concurrent transactions on real databases."""

import fcntl
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date

from sqlalchemy import func, select

from clinic import scheduling
from clinic.db import Database
from clinic.models import Appointment, AppointmentStatus, Patient
from tests.conftest import DEMO_NOW, DEMO_TODAY

CLIENTS = 50


def race(db: Database, attempts: list) -> list:
    """Run each attempt(db) on its own connection, released together by a barrier."""
    barrier = threading.Barrier(len(attempts))

    def attempt(call):
        own = Database(db.url)  # a separate engine: no shared pool to serialise on
        try:
            barrier.wait()
            return call(own)
        except scheduling.SchedulingError as error:
            return error
        finally:
            own.dispose()

    with ThreadPoolExecutor(max_workers=len(attempts)) as pool:
        return list(pool.map(attempt, attempts))


def test_fifty_concurrent_bookings_of_one_slot_give_exactly_one_appointment(any_demo_db):
    with any_demo_db.transaction() as s:
        patients = [Patient(first_name=f"P{i}", last_name="R", date_of_birth=date(1990, 1, 1)) for i in range(CLIENTS)]
        s.add_all(patients)
        s.flush()
        patient_ids = [p.id for p in patients]
    query = scheduling.SlotQuery(*scheduling.day_window(DEMO_TODAY), specialty="cardiology")
    slot = scheduling.free_slots(any_demo_db, query, now=DEMO_NOW)[0]

    outcomes = race(any_demo_db, [
        lambda db, pid=pid: scheduling.book(db, patient_id=pid, slot_id=slot.id, actor="race", now=DEMO_NOW)
        for pid in patient_ids
    ])

    booked = [o for o in outcomes if isinstance(o, scheduling.AppointmentView)]
    refused = [o for o in outcomes if isinstance(o, scheduling.SlotTaken)]
    assert (len(booked), len(refused)) == (1, CLIENTS - 1), [type(o).__name__ for o in outcomes]
    with any_demo_db.transaction() as s:
        holders = s.scalars(select(Appointment).where(Appointment.slot_id == slot.id)).all()
    assert [(a.patient_id, a.status) for a in holders] == [(booked[0].patient_id, AppointmentStatus.booked)]


def test_two_concurrent_reschedules_of_one_appointment_leave_one_new_booking(any_demo_db):
    query = scheduling.SlotQuery(*scheduling.day_window(DEMO_TODAY), specialty="cardiology")
    current, *targets = scheduling.free_slots(any_demo_db, query, now=DEMO_NOW)[:3]
    with any_demo_db.transaction() as s:
        patient_id = s.scalars(select(Patient.id)).first()
    appointment = scheduling.book(any_demo_db, patient_id=patient_id, slot_id=current.id, actor="t", now=DEMO_NOW)

    outcomes = race(any_demo_db, [
        lambda db, slot_id=t.id: scheduling.reschedule(
            db, appointment_id=appointment.id, new_slot_id=slot_id, actor="race", now=DEMO_NOW)
        for t in targets
    ])

    assert sum(isinstance(o, scheduling.AppointmentView) for o in outcomes) == 1, outcomes
    with any_demo_db.transaction() as s:
        active = s.scalar(select(func.count()).select_from(Appointment).where(
            Appointment.patient_id == patient_id, Appointment.status == AppointmentStatus.booked))
    assert active == 1


def test_a_write_transaction_holds_the_writers_turn_of_every_process(tmp_path):
    """SQLite's busy handler naps up to 100 ms between tries; the turn file wakes a waiting process at once."""
    db = Database(f"sqlite:///{tmp_path / 'clinic.db'}")
    other = os.open(tmp_path / "clinic.db-writers", os.O_RDWR | os.O_CREAT)  # as another process opens it
    try:
        with db.transaction():
            try:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
                raise AssertionError("another process could take the turn during a write transaction")
            except BlockingIOError:
                pass
            with Database(db.url).transaction():  # the same thread through another engine: no self-deadlock
                pass
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free once committed
    finally:
        os.close(other)
        db.dispose()
