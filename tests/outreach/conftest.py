"""Helpers for the outreach tests: the demo clinic, appointments at known local times, a client
that only queues (no Graph API: delivery is the client's own tests' business).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from clinic import scheduling
from clinic.models import AppointmentReminder, AuditEntry, OutboundMessage
from clinic.outreach.reminders import SOURCE, Rules
from clinic.whatsapp.client import WhatsAppClient
from clinic.whatsapp.types import GraphConfig

ROME = ZoneInfo("Europe/Rome")
# Demo patients (clinic/demo/clinic.yml, seeded in this order): contact 393330000001 is Giovanni,
# 447700900001 is Emily (English).
GIOVANNI, EMILY = 1, 4
BOOKED_AT = datetime(2027, 3, 1, 7, 0, tzinfo=ZoneInfo("UTC"))  # DEMO_NOW: Monday 08:00 in Rome
RULES = Rules(offsets=(72, 24), grace=timedelta(hours=6), quiet=(time(21), time(8)), zone=ROME)
OFFLINE = GraphConfig(api_base_url="http://127.0.0.1:9", api_version="v23.0", phone_number_id="1",
                      access_token="t", app_secret="s", verify_token="v")


def local(day: date, at: time) -> datetime:
    return datetime.combine(day, at, tzinfo=ROME)


def book(db, patient_id: int = GIOVANNI, day: date = date(2027, 3, 5), specialty: str | None = "cardiology",
         now: datetime = BOOKED_AT) -> scheduling.AppointmentView:
    """The first free slot of `specialty` (None: any) on a local day (Friday 5 March by default), booked at `now`."""
    query = scheduling.SlotQuery(*scheduling.day_window(day), specialty=specialty)
    slot = scheduling.free_slots(db, query, now=now, limit=1)[0]
    return scheduling.book(db, patient_id=patient_id, slot_id=slot.id, actor="staff:test", specialty=specialty,
                           now=now)


def reminders(db) -> list[AppointmentReminder]:
    with db.reading() as session:
        return session.scalars(select(AppointmentReminder).order_by(AppointmentReminder.id)).all()


def outbox(db) -> list[OutboundMessage]:
    with db.reading() as session:
        return session.scalars(select(OutboundMessage).where(OutboundMessage.source == SOURCE)
                               .order_by(OutboundMessage.id)).all()


def audit_kinds(db) -> list[str]:
    with db.reading() as session:
        kinds = session.scalars(select(AuditEntry.kind).order_by(AuditEntry.seq))
        return [kind for kind in kinds if kind.startswith("reminder.")]


@pytest.fixture
def client(any_demo_db) -> WhatsAppClient:
    return WhatsAppClient(any_demo_db, OFFLINE, default_language="it")
