"""The waitlist: patients who found nothing suitable and want to hear when a slot frees up.

Joining twice for the same target merges into one entry covering both date ranges, so a patient
is never offered the same freed slot twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select

from clinic.db import Database
from clinic.models import Patient, Practitioner, Specialty, WaitlistEntry
from clinic.scheduling import SchedulingError, UnknownPatient


@dataclass(frozen=True)
class WaitlistView:
    id: int
    patient_id: int
    specialty: str | None
    practitioner_id: int | None
    wanted_from: date
    wanted_until: date


def _view(entry: WaitlistEntry, specialty_key: str | None) -> WaitlistView:
    return WaitlistView(entry.id, entry.patient_id, specialty_key, entry.practitioner_id,
                        entry.wanted_from, entry.wanted_until)


def join(
    db: Database,
    *,
    patient_id: int,
    wanted_from: date,
    wanted_until: date,
    specialty: str | None = None,
    practitioner_id: int | None = None,
) -> WaitlistView:
    """Put a patient on the waitlist for a specialty and/or practitioner between two local dates."""
    if specialty is None and practitioner_id is None:
        raise SchedulingError("a waitlist entry needs a specialty or a practitioner")
    wanted_from, wanted_until = min(wanted_from, wanted_until), max(wanted_from, wanted_until)
    with db.transaction() as session:
        if session.get(Patient, patient_id) is None:
            raise UnknownPatient(f"patient {patient_id} does not exist")
        specialty_id = None
        if specialty is not None:
            specialty_id = session.scalars(select(Specialty.id).where(Specialty.key == specialty)).one_or_none()
            if specialty_id is None:
                raise SchedulingError(f"unknown specialty {specialty!r}")
        if practitioner_id is not None and session.get(Practitioner, practitioner_id) is None:
            raise SchedulingError(f"practitioner {practitioner_id} does not exist")
        entry = session.scalars(
            select(WaitlistEntry).where(
                WaitlistEntry.patient_id == patient_id,
                WaitlistEntry.specialty_id == specialty_id,  # `== None` renders as IS NULL
                WaitlistEntry.practitioner_id == practitioner_id,
                WaitlistEntry.active.is_(True),
            )
        ).first()
        if entry is None:
            entry = WaitlistEntry(patient_id=patient_id, specialty_id=specialty_id, practitioner_id=practitioner_id,
                                  wanted_from=wanted_from, wanted_until=wanted_until, active=True)
            session.add(entry)
        else:
            entry.wanted_from = min(entry.wanted_from, wanted_from)
            entry.wanted_until = max(entry.wanted_until, wanted_until)
        session.flush()
        return _view(entry, specialty)


def entries(db: Database, patient_id: int) -> list[WaitlistView]:
    """A patient's active waitlist entries, oldest first."""
    with db.reading() as session:
        rows = session.execute(
            select(WaitlistEntry, Specialty.key)
            .outerjoin(Specialty, Specialty.id == WaitlistEntry.specialty_id)
            .where(WaitlistEntry.patient_id == patient_id, WaitlistEntry.active.is_(True))
            .order_by(WaitlistEntry.id)
        ).all()
        return [_view(entry, key) for entry, key in rows]
