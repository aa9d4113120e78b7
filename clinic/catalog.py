"""What the clinic offers: specialties, practitioners and locations, read for patients' questions."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from clinic.db import Database
from clinic.models import Location, Practitioner, Specialty


@dataclass(frozen=True)
class SpecialtyInfo:
    key: str
    name_it: str
    name_en: str
    preparation_it: str | None
    preparation_en: str | None

    def name(self, language: str) -> str:
        return self.name_it if language == "it" else self.name_en

    def preparation(self, language: str) -> str | None:
        return self.preparation_it if language == "it" else self.preparation_en


@dataclass(frozen=True)
class LocationInfo:
    key: str
    name: str
    address: str
    phone: str | None
    opening_hours: dict[str, list[list[str]]]


def specialties(db: Database) -> dict[str, SpecialtyInfo]:
    """Every specialty that at least one active practitioner offers, by key."""
    stmt = (
        select(Specialty)
        .where(Specialty.id.in_(select(Specialty.id).join(Practitioner.specialties).where(Practitioner.active)))
        .order_by(Specialty.key)
    )
    with db.reading() as session:
        return {
            s.key: SpecialtyInfo(s.key, s.name_it, s.name_en, s.preparation_it, s.preparation_en)
            for s in session.scalars(stmt)
        }


def practitioner_id(db: Database, key: str) -> int | None:
    with db.reading() as session:
        return session.scalars(select(Practitioner.id).where(Practitioner.key == key, Practitioner.active)).first()


def locations(db: Database) -> list[LocationInfo]:
    with db.reading() as session:
        return [
            LocationInfo(loc.key, loc.name, loc.address, loc.phone, loc.opening_hours)
            for loc in session.scalars(select(Location).order_by(Location.id))
        ]
