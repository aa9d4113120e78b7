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


@dataclass(frozen=True)
class Term:
    """A phrase patients use for something the clinic has: `entity` is `specialty` or `doctor`."""

    entity: str
    key: str
    phrase: str


def terms(db: Database) -> list[Term]:
    """Every name and synonym of the clinic's specialties and active practitioners."""
    found: list[Term] = []
    with db.reading() as session:
        for s in session.scalars(select(Specialty)):
            for phrase in {s.key.replace("_", " "), s.name_it, s.name_en, *s.synonyms_it, *s.synonyms_en}:
                found.append(Term("specialty", s.key, phrase.lower()))
        taken = {t.phrase for t in found}  # "Laboratorio Analisi" must not turn "analisi" into a doctor
        for p in session.scalars(select(Practitioner).where(Practitioner.active)):
            for phrase in {p.last_name, f"{p.first_name} {p.last_name}", f"{p.title} {p.last_name}".strip()}:
                if phrase.lower() not in taken:
                    found.append(Term("doctor", p.key, phrase.lower()))
    return found
