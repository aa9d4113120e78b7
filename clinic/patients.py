"""Patients and the WhatsApp contacts that act for them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

import dateparser
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from clinic.db import Database
from clinic.models import Contact, ContactPatient, Patient, Relationship


@dataclass(frozen=True)
class LinkedPatient:
    id: int
    first_name: str
    last_name: str
    date_of_birth: date
    language: str
    relation: Relationship  # what the contact is to this patient


@dataclass(frozen=True)
class ContactProfile:
    """What the bot knows about whoever writes from a number."""

    language: str | None
    first_name: str | None  # the contact's own patient record, if any
    patients: list[LinkedPatient]


def is_contact(sender_id: str):
    """The SQL condition for the contact behind a conversation id: its phone number, or its
    business-scoped user id for users who do not share their number.
    """
    return or_(Contact.wa_id == sender_id, Contact.user_id == sender_id)


def contact_for(session: Session, wa_id: str | None = None, user_id: str | None = None) -> Contact:
    """The contact with this phone number or business-scoped user id, created on first sight.

    A `wa_id` that is not a phone number (digits) is a conversation id of a user known only by
    their business-scoped user id (`IT.1502…`), and is looked up as such.
    """
    if wa_id and not wa_id.isdigit():
        wa_id, user_id = None, user_id or wa_id
    contact = None
    if wa_id:
        contact = session.scalars(select(Contact).where(Contact.wa_id == wa_id)).first()
    if contact is None and user_id:
        contact = session.scalars(select(Contact).where(Contact.user_id == user_id)).first()
    if contact is None:
        contact = Contact(wa_id=wa_id, user_id=user_id)
        session.add(contact)
        session.flush()
    return contact


def contact_id(db: Database, sender_id: str) -> int:
    """The id of the contact behind a conversation id, created on first sight (e.g. REST channel)."""
    with db.transaction() as session:
        return contact_for(session, wa_id=sender_id).id


def register_patient(
    db: Database,
    *,
    wa_id: str | None,
    first_name: str,
    last_name: str,
    date_of_birth: date,
    language: str,
    relation: Relationship = Relationship.self,
    user_id: str | None = None,
) -> int:
    """Create a patient and link the writing contact to it; the same person twice is one patient."""
    with db.transaction() as session:
        contact = contact_for(session, wa_id, user_id)
        patient = session.scalars(
            select(Patient).where(
                Patient.first_name == first_name,
                Patient.last_name == last_name,
                Patient.date_of_birth == date_of_birth,
            )
        ).first()
        if patient is None:
            patient = Patient(
                first_name=first_name, last_name=last_name, date_of_birth=date_of_birth, language=language
            )
            session.add(patient)
            session.flush()
        if session.get(ContactPatient, (contact.id, patient.id)) is None:
            session.add(ContactPatient(contact_id=contact.id, patient_id=patient.id, relation=relation))
        return patient.id


def linked_patients(db: Database, wa_id: str) -> list[LinkedPatient]:
    """The patients a contact may act for, the contact's own record first."""
    stmt = (
        select(Patient, ContactPatient.relation)
        .join(ContactPatient, ContactPatient.patient_id == Patient.id)
        .join(Contact, Contact.id == ContactPatient.contact_id)
        .where(is_contact(wa_id))
        .order_by(ContactPatient.relation != Relationship.self, Patient.first_name, Patient.id)
    )
    with db.transaction() as session:
        return [
            LinkedPatient(p.id, p.first_name, p.last_name, p.date_of_birth, p.language, relation)
            for p, relation in session.execute(stmt)
        ]


def contact_profile(db: Database, wa_id: str) -> ContactProfile:
    with db.reading() as session:
        language = session.scalars(select(Contact.language).where(is_contact(wa_id))).first()
    patients = linked_patients(db, wa_id)
    own = next((p for p in patients if p.relation is Relationship.self), None)
    return ContactProfile(language=language, first_name=own.first_name if own else None, patients=patients)


def remember_language(db: Database, wa_id: str, language: str) -> None:
    """Keep the contact's language, and their own patient record's, for the next conversation."""
    with db.transaction() as session:
        contact = contact_for(session, wa_id=wa_id)
        contact.language = language
        for link in contact.links:
            if link.relation is Relationship.self:
                link.patient.language = language


_NAME_PARTICLES = {"de", "di", "da", "del", "della", "dello", "dal", "dalla", "la", "lo", "van", "von", "mc"}
_NAME = re.compile(r"^[^\W\d_]+(?:['\-][^\W\d_]+)*$")


def split_full_name(text: str) -> tuple[str, str] | None:
    """("Maria Grazia", "De Luca") from "maria grazia de luca"; None if it is not a name."""
    words = [w for w in re.sub(r"^(mi chiamo|sono|my name is|i am|i'm)\s+", "", text.strip(), flags=re.I).split()]
    if len(words) < 2 or len(words) > 6 or not all(_NAME.match(w) for w in words):
        return None
    cut = len(words) - 1
    while cut > 1 and words[cut - 1].lower() in _NAME_PARTICLES:
        cut -= 1
    capital = lambda w: w if any(c.isupper() for c in w[1:]) else w[:1].upper() + w[1:].lower()  # noqa: E731
    return " ".join(map(capital, words[:cut])), " ".join(map(capital, words[cut:]))


def parse_date_of_birth(text: str, today: date) -> date | None:
    """A plausible date of birth, day first ("12/04/1980", "12 aprile 1980", "April 12, 1980")."""
    if not re.search(r"\b\d{4}\b", text):
        return None  # without the year a birth date is a guess
    text = re.sub(r"^\s*(sono\s+)?(nat[oa]\s+)?(il\s+|on\s+|born\s+(on\s+)?)?", "", text, flags=re.I)
    parsed = dateparser.parse(
        text,
        languages=["it", "en"],
        settings={"DATE_ORDER": "DMY", "PREFER_DATES_FROM": "past", "STRICT_PARSING": True},
    )
    if parsed is None:
        return None
    born = parsed.date()
    return born if today.replace(year=today.year - 120) <= born <= today else None
