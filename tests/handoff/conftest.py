from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from clinic.models import Contact, ContactPatient, Patient, Relationship, StaffRole, StaffUser
from clinic.staff import hash_password

NOW = datetime(2027, 3, 1, 9, 0, tzinfo=timezone.utc)
_HASH = None


def add_contact(db, wa_id="393330000001", name="Maria", last_inbound_at=NOW - timedelta(hours=1), patient=True) -> int:
    with db.transaction() as s:
        contact = Contact(wa_id=wa_id, profile_name=name, language="it", last_inbound_at=last_inbound_at)
        s.add(contact)
        s.flush()
        if patient:
            child = Patient(first_name="Luca", last_name="Verdi", date_of_birth=date(2019, 3, 2), language="it")
            s.add(child)
            s.flush()
            s.add(ContactPatient(contact_id=contact.id, patient_id=child.id, relation=Relationship.parent))
        return contact.id


def add_staff(db, username="rossi", role=StaffRole.nurse) -> int:
    global _HASH
    _HASH = _HASH or hash_password("not-used-here")
    with db.transaction() as s:
        user = StaffUser(username=username, password_hash=_HASH, role=role)
        s.add(user)
        s.flush()
        return user.id


@pytest.fixture
def contact_id(any_db) -> int:
    return add_contact(any_db)
