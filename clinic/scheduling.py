"""Finding, booking, rescheduling and cancelling appointments: the clinic's booking rules.

Each function runs one short transaction and returns plain frozen dataclasses, so callers (Rasa
actions, the CLI, the inbox) never hold ORM objects across threads or sessions. Every booking change
lands in the audit trail in the same transaction: who, and the old and new status, slot and start. A double booking
is refused by the database itself (see `Appointment`'s partial unique index); the checks here only
turn that refusal into a clear exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import and_, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, contains_eager, joinedload

from clinic import audit, hooks
from clinic.db import Database
from clinic.models import (
    Appointment,
    AppointmentStatus,
    Patient,
    Practitioner,
    Slot,
    Specialty,
    practitioner_specialties,
)
from clinic.settings import settings
from clinic.slots import local_instant


class SchedulingError(Exception):
    """A booking rule said no; the message names ids only, never patient data."""


class UnknownSlot(SchedulingError):
    pass


class UnknownAppointment(SchedulingError):
    pass


class UnknownPatient(SchedulingError):
    pass


class SlotTaken(SchedulingError):
    """Someone else booked the slot first: offer fresh options, never an error."""


class SlotNotBookable(SchedulingError):
    """The slot is in the past, inside the minimum lead time, or withdrawn."""


class WrongSpecialty(SchedulingError):
    pass


class AppointmentNotActive(SchedulingError):
    """The appointment is cancelled, over, or was already rescheduled."""


class TooLateToCancel(SchedulingError):
    """Inside the late-cancellation window: not by chat; the caller decides (e.g. a nurse)."""


# Local wall-clock bounds for parts of the day, shared by slot search and time parsing.
PARTS_OF_DAY: dict[str, tuple[time, time]] = {
    "morning": (time(6), time(12)),
    "afternoon": (time(12), time(18)),
    "evening": (time(18), time(22)),
}

ALLOWED_TRANSITIONS: dict[AppointmentStatus, set[AppointmentStatus]] = {
    AppointmentStatus.booked: {
        AppointmentStatus.confirmed,
        AppointmentStatus.cancelled,
        AppointmentStatus.completed,
        AppointmentStatus.no_show,
    },
    AppointmentStatus.confirmed: {
        AppointmentStatus.cancelled,
        AppointmentStatus.completed,
        AppointmentStatus.no_show,
    },
}


@dataclass(frozen=True)
class SlotQuery:
    """What a patient asked for: an interval, and a specialty and/or practitioner (or neither)."""

    start: datetime
    end: datetime
    specialty: str | None = None
    practitioner_id: int | None = None
    location_id: int | None = None


@dataclass(frozen=True)
class FreeSlot:
    id: int
    practitioner_id: int
    practitioner_name: str
    location_id: int
    location_name: str
    location_address: str
    start_at: datetime
    end_at: datetime


@dataclass(frozen=True)
class AppointmentView:
    id: int
    patient_id: int
    patient_name: str
    practitioner_id: int
    practitioner_name: str
    specialty: str | None
    location_name: str
    location_address: str
    slot_id: int
    start_at: datetime
    end_at: datetime
    status: AppointmentStatus
    reason: str
    rescheduled_from_id: int | None


def day_window(first: date, last: date | None = None, part: str | None = None) -> tuple[datetime, datetime]:
    """The UTC interval of local days (inclusive), optionally narrowed to a part of the day."""
    zone = settings().zone
    last = last or first
    start_time, end_time = PARTS_OF_DAY[part] if part else (time(0), None)
    start = local_instant(first, start_time, zone) or datetime.combine(first, start_time, tzinfo=zone)
    if end_time is None:
        end_day, end_time = last + timedelta(days=1), time(0)
    else:
        end_day = last
    end = local_instant(end_day, end_time, zone) or datetime.combine(end_day, end_time, tzinfo=zone)
    return start, end


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(timezone.utc)


def earliest_bookable(now: datetime | None = None) -> datetime:
    return _now(now) + timedelta(minutes=settings().booking_min_lead_minutes)


def latest_booking(start_at: datetime) -> datetime:
    """The last moment a slot starting at `start_at` can still be booked (the lead time before it)."""
    return start_at - timedelta(minutes=settings().booking_min_lead_minutes)


def _slot_is_free():
    # Same predicate as the partial unique index, so the database can answer from it.
    return ~exists().where(and_(Appointment.slot_id == Slot.id, Appointment.status != AppointmentStatus.cancelled))


def bookable_now(now: datetime | None = None):
    """The condition on a `Slot` joined to its `Practitioner` that makes it free to book now: the one
    definition of a free slot, for the chat's offers and the FHIR API's `Slot?status=free` alike.
    """
    return and_(Slot.start_at >= earliest_bookable(now), Slot.bookable.is_(True), Practitioner.active.is_(True),
                _slot_is_free())


def slot_held():
    """The condition on a `Slot` that an appointment holds it (anything but cancelled)."""
    return ~_slot_is_free()


def free_slots(
    db: Database, query: SlotQuery, *, now: datetime | None = None, limit: int = 10, offset: int = 0
) -> list[FreeSlot]:
    """Free slots in the query's interval, earliest first, never in the past nor inside the lead time."""
    stmt = (
        select(Slot)
        .join(Slot.practitioner)
        .join(Slot.location)
        .options(contains_eager(Slot.practitioner), contains_eager(Slot.location))
        .where(Slot.start_at >= query.start, Slot.start_at < query.end, bookable_now(now))
        .order_by(Slot.start_at, Slot.practitioner_id)
        .limit(limit)
        .offset(offset)
    )
    if query.practitioner_id is not None:
        stmt = stmt.where(Slot.practitioner_id == query.practitioner_id)
    if query.location_id is not None:
        stmt = stmt.where(Slot.location_id == query.location_id)
    if query.specialty is not None:
        stmt = stmt.where(
            exists().where(
                practitioner_specialties.c.practitioner_id == Slot.practitioner_id,
                practitioner_specialties.c.specialty_id == Specialty.id,
                Specialty.key == query.specialty,
            )
        )
    with db.reading() as session:
        return [_free_slot(s) for s in session.scalars(stmt).unique()]


def _free_slot(s: Slot) -> FreeSlot:
    return FreeSlot(
        id=s.id,
        practitioner_id=s.practitioner_id,
        practitioner_name=s.practitioner.display_name,
        location_id=s.location_id,
        location_name=s.location.name,
        location_address=s.location.address,
        start_at=s.start_at,
        end_at=s.end_at,
    )


def slot(db: Database, slot_id: int) -> FreeSlot | None:
    """A slot's details (free or not), e.g. to show a summary before booking it."""
    with db.reading() as session:
        found = session.get(Slot, slot_id, options=[joinedload(Slot.practitioner), joinedload(Slot.location)])
        return _free_slot(found) if found else None


def appointment_in(session: Session, appointment_id: int) -> AppointmentView:
    """An appointment's view inside the caller's transaction."""
    return _view(_load_appointment(session, appointment_id))


def appointment(db: Database, appointment_id: int) -> AppointmentView | None:
    try:
        with db.reading() as session:
            return _view(_load_appointment(session, appointment_id))
    except UnknownAppointment:
        return None


def _view(a: Appointment) -> AppointmentView:
    return AppointmentView(
        id=a.id,
        patient_id=a.patient_id,
        patient_name=a.patient.full_name,
        practitioner_id=a.practitioner_id,
        practitioner_name=a.practitioner.display_name,
        specialty=a.specialty.key if a.specialty else None,
        location_name=a.location.name,
        location_address=a.location.address,
        slot_id=a.slot_id,
        start_at=a.start_at,
        end_at=a.end_at,
        status=a.status,
        reason=a.reason,
        rescheduled_from_id=a.rescheduled_from_id,
    )


def _bookable_slot(session: Session, slot_id: int, now: datetime) -> Slot:
    slot = session.get(Slot, slot_id, options=[joinedload(Slot.practitioner).selectinload(Practitioner.specialties)])
    if slot is None:
        raise UnknownSlot(f"slot {slot_id} does not exist")
    if not slot.bookable or not slot.practitioner.active or slot.start_at < earliest_bookable(now):
        raise SlotNotBookable(f"slot {slot_id} cannot be booked any more")
    return slot


def _specialty_for(slot: Slot, specialty: str | None) -> Specialty | None:
    offered = slot.practitioner.specialties
    if specialty is None:
        return offered[0] if len(offered) == 1 else None
    chosen = next((s for s in offered if s.key == specialty), None)
    if chosen is None:
        raise WrongSpecialty(f"practitioner {slot.practitioner_id} does not offer {specialty}")
    return chosen


def _new_appointment(slot: Slot, patient_id: int, specialty: Specialty | None, reason: str, actor: str,
                     now: datetime, rescheduled_from_id: int | None = None) -> Appointment:
    return Appointment(
        patient_id=patient_id,
        practitioner_id=slot.practitioner_id,
        specialty=specialty,
        location_id=slot.location_id,
        slot_id=slot.id,
        start_at=slot.start_at,
        end_at=slot.end_at,
        reason=reason,
        status=AppointmentStatus.booked,
        rescheduled_from_id=rescheduled_from_id,
        created_at=now,
        created_by=actor,
        changed_at=now,
        changed_by=actor,
    )


def _refusal(error: IntegrityError, slot_id: int) -> SchedulingError:
    """Name the rule the database enforced; anything else is a bug and propagates."""
    text = str(error.orig)
    if "uq_appointments_active_slot" in text or "appointments.slot_id" in text:
        return SlotTaken(f"slot {slot_id} was booked by someone else")
    if "rescheduled_from_id" in text:
        return AppointmentNotActive("the appointment was already rescheduled")
    raise error


def _load_appointment(session: Session, appointment_id: int) -> Appointment:
    appointment = session.get(
        Appointment,
        appointment_id,
        options=[joinedload(Appointment.patient), joinedload(Appointment.practitioner),
                 joinedload(Appointment.location), joinedload(Appointment.specialty)],
    )
    if appointment is None:
        raise UnknownAppointment(f"appointment {appointment_id} does not exist")
    return appointment


def _state(appointment: Appointment) -> dict:
    """What the audit trail keeps of an appointment's state: ids, status and start, nothing personal."""
    return {"appointment_id": appointment.id, "status": appointment.status, "slot_id": appointment.slot_id,
            "start_at": appointment.start_at}


def _audit(session: Session, kind: str, appointment: Appointment, old: dict | None, actor: str, now: datetime,
           **extra) -> None:
    """The booking change's audit entry and its webhook event, in its transaction (call it last: it
    takes the trail's lock). The one place every booking change passes: what other systems hear of.
    """
    data = {"patient_id": appointment.patient_id, "old": old, "new": _state(appointment), **extra}
    hooks.booking_event(session, kind, {**data, "practitioner_id": appointment.practitioner_id,
                                        "location_id": appointment.location_id, "end_at": appointment.end_at}, now)
    audit.record(session, f"appointment.{kind}", actor=actor, subject=f"appointment:{appointment.id}",
                 data=data, now=now)


def _transition(appointment: Appointment, status: AppointmentStatus, actor: str, now: datetime) -> None:
    if status not in ALLOWED_TRANSITIONS.get(appointment.status, set()):
        raise AppointmentNotActive(f"appointment {appointment.id} is {appointment.status.value}")
    appointment.status, appointment.changed_by, appointment.changed_at = status, actor, now


def book(
    db: Database,
    *,
    patient_id: int,
    slot_id: int,
    actor: str,
    specialty: str | None = None,
    reason: str = "",
    now: datetime | None = None,
) -> AppointmentView:
    """Book a free slot for a patient. Raises SlotTaken if anyone else holds it, at any moment."""
    now = _now(now)
    try:
        with db.transaction() as session:
            return book_in(session, patient_id=patient_id, slot_id=slot_id, actor=actor, specialty=specialty,
                           reason=reason, now=now)
    except IntegrityError as error:
        raise _refusal(error, slot_id) from None


def book_in(session: Session, *, patient_id: int, slot_id: int, actor: str, specialty: str | None = None,
            reason: str = "", now: datetime, **audit_extra) -> AppointmentView:
    """`book` inside the caller's transaction (e.g. with the waitlist offer it answers). A slot
    someone else holds raises IntegrityError at the flush: pass it through `refusal`.
    """
    if session.get(Patient, patient_id) is None:
        raise UnknownPatient(f"patient {patient_id} does not exist")
    slot = _bookable_slot(session, slot_id, now)
    appointment = _new_appointment(slot, patient_id, _specialty_for(slot, specialty), reason, actor, now)
    session.add(appointment)
    session.flush()
    _audit(session, "booked", appointment, None, actor, now, **audit_extra)
    return _view(_load_appointment(session, appointment.id))


def refusal(error: IntegrityError, slot_id: int) -> SchedulingError:
    """The booking rule behind a database refusal (`book_in`'s callers)."""
    return _refusal(error, slot_id)


def reschedule(
    db: Database, *, appointment_id: int, new_slot_id: int, actor: str, now: datetime | None = None
) -> AppointmentView:
    """Move an appointment to another slot in one transaction: the new slot is taken and the old
    one freed together, or nothing changes.
    """
    now = _now(now)
    try:
        with db.transaction() as session:
            old = _load_appointment(session, appointment_id)
            before = _state(old)
            _transition(old, AppointmentStatus.cancelled, actor, now)  # any refusal below rolls back
            old.cancellation_reason = "rescheduled"
            if old.start_at <= now:
                raise AppointmentNotActive(f"appointment {appointment_id} is in the past")
            if old.slot_id == new_slot_id:
                raise SlotNotBookable(f"appointment {appointment_id} already holds slot {new_slot_id}")
            slot = _bookable_slot(session, new_slot_id, now)
            specialty = _specialty_for(slot, old.specialty.key if old.specialty else None)
            session.flush()  # free the old slot first, so moving within a shared slot set works
            new = _new_appointment(slot, old.patient_id, specialty, old.reason, actor, now, old.id)
            session.add(new)
            session.flush()
            _audit(session, "rescheduled", new, before, actor, now)
            return _view(_load_appointment(session, new.id))
    except IntegrityError as error:
        raise _refusal(error, new_slot_id) from None


def is_late_cancellation(start_at: datetime, now: datetime | None = None) -> bool:
    """True inside the late-cancellation window, when cancelling by chat is no longer allowed."""
    return start_at - _now(now) < timedelta(hours=settings().late_cancellation_hours)


def cancel(
    db: Database,
    *,
    appointment_id: int,
    reason: str,
    actor: str,
    allow_late: bool = False,
    now: datetime | None = None,
) -> AppointmentView:
    """Cancel and free the slot. Inside the late window raises TooLateToCancel unless the caller
    (staff, a nurse) passes allow_late.
    """
    now = _now(now)
    with db.transaction() as session:
        appointment = _load_appointment(session, appointment_id)
        if appointment.start_at <= now:
            raise AppointmentNotActive(f"appointment {appointment_id} is in the past")
        if not allow_late and is_late_cancellation(appointment.start_at, now):
            raise TooLateToCancel(f"appointment {appointment_id} starts within the late-cancellation window")
        before = _state(appointment)
        _transition(appointment, AppointmentStatus.cancelled, actor, now)
        appointment.cancellation_reason = reason
        _audit(session, "cancelled", appointment, before, actor, now,
               late=is_late_cancellation(appointment.start_at, now))
        return _view(appointment)


def confirm(db: Database, *, appointment_id: int, actor: str, now: datetime | None = None) -> AppointmentView:
    """The patient will come. Confirming twice is harmless."""
    now = _now(now)
    with db.transaction() as session:
        appointment = _load_appointment(session, appointment_id)
        if appointment.status is not AppointmentStatus.confirmed:
            if appointment.start_at <= now:
                raise AppointmentNotActive(f"appointment {appointment_id} is in the past")
            before = _state(appointment)
            _transition(appointment, AppointmentStatus.confirmed, actor, now)
            _audit(session, "confirmed", appointment, before, actor, now)
        return _view(appointment)


ATTENDANCE = (AppointmentStatus.completed, AppointmentStatus.no_show)


def record_attendance(
    db: Database, *, appointment_id: int, status: AppointmentStatus, actor: str, now: datetime | None = None
) -> AppointmentView:
    """The visit took place (`completed`) or the patient did not come (`no_show`): only once it has
    begun, and only for a booked or confirmed appointment. Follow-ups and KPIs start from here.
    """
    if status not in ATTENDANCE:
        raise ValueError(f"attendance is completed or no_show, not {status}")
    now = _now(now)
    with db.transaction() as session:
        if session.get_bind().dialect.name == "postgresql":  # two workers marking one no-show: one wins
            session.execute(select(Appointment.id).where(Appointment.id == appointment_id).with_for_update())
        appointment = _load_appointment(session, appointment_id)
        if appointment.status is status:
            return _view(appointment)
        if appointment.start_at > now:
            raise AppointmentNotActive(f"appointment {appointment_id} has not started yet")
        before = _state(appointment)
        _transition(appointment, status, actor, now)
        _audit(session, status.value, appointment, before, actor, now)
        return _view(appointment)


def complete(db: Database, *, appointment_id: int, actor: str, now: datetime | None = None) -> AppointmentView:
    """The patient came (staff check the visit off): the after-visit follow-up and survey follow."""
    return record_attendance(db, appointment_id=appointment_id, status=AppointmentStatus.completed, actor=actor,
                             now=now)


def mark_no_show(db: Database, *, appointment_id: int, actor: str, now: datetime | None = None) -> AppointmentView:
    """The patient did not come (staff, or the outreach worker after NO_SHOW_AFTER_HOURS)."""
    return record_attendance(db, appointment_id=appointment_id, status=AppointmentStatus.no_show, actor=actor,
                             now=now)


def _appointments(db: Database, *conditions) -> list[AppointmentView]:
    stmt = (
        select(Appointment)
        .options(joinedload(Appointment.patient), joinedload(Appointment.practitioner),
                 joinedload(Appointment.location), joinedload(Appointment.specialty))
        .where(*conditions)
        .order_by(Appointment.start_at, Appointment.id)
    )
    with db.reading() as session:
        return [_view(a) for a in session.scalars(stmt).unique()]


def upcoming_appointments(
    db: Database, patient_ids: list[int], now: datetime | None = None
) -> list[AppointmentView]:
    """Booked or confirmed appointments still to come, earliest first."""
    return _appointments(
        db,
        Appointment.patient_id.in_(patient_ids),
        Appointment.start_at > _now(now),
        Appointment.status.in_([AppointmentStatus.booked, AppointmentStatus.confirmed]),
    )


def appointments_between(
    db: Database, start: datetime, end: datetime, *, patient_id: int | None = None,
    include_cancelled: bool = False,
) -> list[AppointmentView]:
    """Appointments starting in [start, end), e.g. a day's list for the front desk."""
    conditions = [Appointment.start_at >= start, Appointment.start_at < end]
    if patient_id is not None:
        conditions.append(Appointment.patient_id == patient_id)
    if not include_cancelled:
        conditions.append(Appointment.status != AppointmentStatus.cancelled)
    return _appointments(db, *conditions)
