"""Patients and the WhatsApp contacts that act for them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
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


def contact_for(session: Session, wa_id: str | None = None, user_id: str | None = None) -> Contact:
    """The contact with this phone number or business-scoped user id, created on first sight."""
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
        .where(Contact.wa_id == wa_id)
        .order_by(ContactPatient.relation != Relationship.self, Patient.first_name, Patient.id)
    )
    with db.transaction() as session:
        return [
            LinkedPatient(p.id, p.first_name, p.last_name, p.date_of_birth, p.language, relation)
            for p, relation in session.execute(stmt)
        ]
