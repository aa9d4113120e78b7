"""The demo clinic: `clinic seed` loads `clinic.yml` beside this file. Running it again changes nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

import yaml
from sqlalchemy import func, select

from clinic import consent
from clinic.db import Database
from clinic.models import (
    Closure,
    ContactPatient,
    Location,
    Patient,
    Practitioner,
    Relationship,
    Slot,
    Specialty,
    WorkingBreak,
    WorkingHours,
)
from clinic.patients import contact_for
from clinic.patients import contact_id as contact_id_for
from clinic.settings import settings
from clinic.slots import sync_slots

DEMO_FILE = Path(__file__).with_name("clinic.yml")
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


@dataclass(frozen=True)
class SeedResult:
    locations: int
    practitioners: int
    patients: int
    slots: int


def _upsert(session, model, key: dict, values: dict):
    row = session.scalars(select(model).filter_by(**key)).first()
    if row is None:
        row = model(**key)
        session.add(row)
    for name, value in values.items():
        setattr(row, name, value)
    return row


def _hhmm(text: str) -> time:
    return datetime.strptime(text, "%H:%M").time()


def _working_hours(practitioner: Practitioner, spec: list, locations: dict[str, Location]) -> WorkingHours:
    weekday, start, end, minutes, location, *rest = spec
    return WorkingHours(
        practitioner=practitioner,
        location_id=locations[location].id,
        weekday=WEEKDAYS.index(weekday),
        start_time=_hhmm(start),
        end_time=_hhmm(end),
        slot_minutes=minutes,
        breaks=[WorkingBreak(start_time=_hhmm(b0), end_time=_hhmm(b1)) for b0, b1 in (rest[0] if rest else [])],
    )


def _demo_consents(db: Database, wa_ids: list[str]) -> None:
    """The demo patients have consented to everything (once), so the demo starts where a real patient
    would be after the consent step; a new number still sees the notice first.
    """
    for wa_id in dict.fromkeys(wa_ids):
        contact_id = contact_id_for(db, wa_id)
        if not consent.state(db, contact_id).asked:
            consent.decide(db, contact_id, consent.PURPOSES, how="demo:seed")


def seed(db: Database, today: date | None = None, source: Path = DEMO_FILE) -> SeedResult:
    """Load the demo clinic and generate its slots from today over the configured horizon."""
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    zone = settings().zone
    today = today or datetime.now(zone).date()
    with db.transaction() as session:
        locations = {
            spec["key"]: _upsert(session, Location, {"key": spec["key"]}, spec) for spec in data["locations"]
        }
        specialties = {
            # a follow-up removed from the file is removed from the clinic too
            spec["key"]: _upsert(session, Specialty, {"key": spec["key"]}, {"followup": None, "followup_book": None,
                                                                             **spec})
            for spec in data["specialties"]
        }
        session.flush()
        for spec in data["practitioners"]:
            fields = {k: v for k, v in spec.items() if k not in {"key", "location", "specialties", "hours"}}
            practitioner = _upsert(
                session,
                Practitioner,
                {"key": spec["key"]},
                {
                    **fields,
                    "location_id": locations[spec["location"]].id,
                    "specialties": [specialties[k] for k in spec["specialties"]],
                },
            )
            session.flush()
            for block in session.scalars(select(WorkingHours).filter_by(practitioner_id=practitioner.id)):
                session.delete(block)
            session.add_all(_working_hours(practitioner, h, locations) for h in spec["hours"])
        for spec in data["closures"]:
            _upsert(session, Closure, {**spec, "location_id": None, "practitioner_id": None}, {})
        for spec in data["patients"]:
            contacts = spec["contacts"]
            patient = _upsert(
                session,
                Patient,
                {k: spec[k] for k in ("first_name", "last_name", "date_of_birth")},
                {"language": spec["language"]},
            )
            session.flush()
            for link in contacts:
                contact = contact_for(session, wa_id=link["wa_id"])
                contact.language = contact.language or spec["language"]
                _upsert(
                    session,
                    ContactPatient,
                    {"contact_id": contact.id, "patient_id": patient.id},
                    {"relation": Relationship(link["relation"])},
                )
    _demo_consents(db, [link["wa_id"] for spec in data["patients"] for link in spec.get("contacts", [])])
    sync_slots(db, today, today + timedelta(days=settings().slot_horizon_days - 1), zone)
    with db.transaction() as session:
        counts = [session.scalar(select(func.count()).select_from(m)) for m in (Location, Practitioner, Patient, Slot)]
    return SeedResult(*counts)

