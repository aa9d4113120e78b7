"""Patients' rights: a copy of their data, erasure, and retention of message content (clinic.rights).

Rasa is not running here (RASA_URL points nowhere): the Rasa side of erasure is checked end to end
in tests/e2e/test_whatsapp_rights.py; these tests pin what the clinic's own database keeps.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from clinic import audit, consent, crypto, rights, staff
from clinic.history import blank
from clinic.models import (
    Appointment,
    AuditEntry,
    Contact,
    HandoffTicket,
    InboundMessage,
    OutboundMessage,
    OutboundStatus,
)
from clinic.settings import settings
from clinic.whatsapp.client import WhatsAppClient
from tests.outreach.conftest import GIOVANNI, OFFLINE, book

NOW = datetime(2027, 3, 1, 7, 0, tzinfo=timezone.utc)
CLINIC = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "clinic")
PHONE = "393330000001"  # Giovanni's contact in the demo clinic


@pytest.fixture(autouse=True)
def nowhere(monkeypatch, tmp_path):
    monkeypatch.setenv("RASA_URL", "http://127.0.0.1:9")  # nothing listens: Rasa is "down"
    monkeypatch.setenv("MEDIA_DIR", str(tmp_path / "media"))


@pytest.fixture
def contact(any_demo_db) -> int:
    """Giovanni's contact: a visit, one photo he sent, a text, a queued reply and an open ticket."""
    book(any_demo_db, GIOVANNI, now=NOW - timedelta(days=5))
    photo = Path(settings().media_dir) / "in" / "photo.jpg"
    crypto.write_file(photo, b"\xff\xd8 a rash")
    with any_demo_db.transaction() as session:
        contact = session.scalars(select(Contact).where(Contact.wa_id == PHONE)).one()
        contact.profile_name = "Giovanni R."
        session.add_all([
            InboundMessage(wamid="wamid.1", contact_id=contact.id, phone_number_id="1", type="text",
                           payload={"text": {"body": "ho un'eruzione sul braccio"}},
                           rasa_text="ho un'eruzione sul braccio", sent_at=NOW - timedelta(days=400),
                           received_at=NOW - timedelta(days=400)),
            InboundMessage(wamid="wamid.2", contact_id=contact.id, phone_number_id="1", type="image",
                           payload={"image": {"id": "m1"}}, media_path="in/photo.jpg", sent_at=NOW,
                           received_at=NOW),
            OutboundMessage(contact_id=contact.id, kind="text",
                            body={"type": "text", "text": {"body": "Ciao Giovanni"}}, source="bot",
                            status=OutboundStatus.read, created_at=NOW - timedelta(days=400)),
            OutboundMessage(contact_id=contact.id, kind="text", body={"type": "text", "text": {"body": "A domani"}},
                            source="bot", status=OutboundStatus.queued, created_at=NOW),
            HandoffTicket(contact_id=contact.id, reason="medical_question", summary={"text": "eruzione"}),
        ])
        return contact.id


@pytest.fixture
def nurse(any_demo_db) -> int:
    return staff.add_user(any_demo_db, "dpo", "a long enough password", "admin").id


def client(db) -> WhatsAppClient:
    return WhatsAppClient(db, OFFLINE)


def test_asking_twice_is_one_request_and_both_are_on_record(any_demo_db, contact):
    first, created = rights.ask(any_demo_db, contact, "export", NOW)
    again, created_again = rights.ask(any_demo_db, contact, "export", NOW)
    erasure, _ = rights.ask(any_demo_db, contact, "erasure", NOW)
    assert (created, created_again, again.id) == (True, False, first.id)
    assert [(r.kind, r.status, r.phone) for r in rights.open_requests(any_demo_db)] == [
        ("export", "pending", PHONE), ("erasure", "pending", PHONE)]
    with any_demo_db.reading() as session:
        entries = session.scalars(select(AuditEntry).where(AuditEntry.kind == "rights.requested")).all()
    assert [e.data["kind"] for e in entries] == ["export", "erasure"]
    assert all(PHONE not in json.dumps(e.data) for e in entries)


def test_an_approved_copy_is_sent_as_an_encrypted_document_holding_the_patients_data(any_demo_db, contact, nurse):
    request, _ = rights.ask(any_demo_db, contact, "export", NOW)
    done = rights.approve(any_demo_db, client(any_demo_db), request.id, nurse, NOW)
    assert done.status == "done"
    with any_demo_db.reading() as session:
        sent = session.scalars(select(OutboundMessage).where(OutboundMessage.source == "rights:export")).one()
    document = sent.body["document"]
    assert document["filename"] == "data-2027-03-01.json" and "copia dei dati" in document["caption"]
    stored = Path(document["local_path"]).read_bytes()
    assert b"Giovanni" not in stored  # encrypted at rest until the client uploads it
    data = json.loads(crypto.read_file(Path(document["local_path"])))
    assert data["contact"]["phone"] == PHONE
    assert [p["first_name"] for p in data["patients"]] == ["Giovanni"]
    assert len(data["appointments"]) == 1 and data["appointments"][0]["status"] == "booked"
    assert "ho un'eruzione sul braccio" in [m["text"] for m in data["messages_received"]]
    assert "Ciao Giovanni" in [m["content"] for m in data["messages_sent"]]
    assert {c["purpose"] for c in data["consents"]} == set(consent.PURPOSES)
    with pytest.raises(rights.RightsError, match="already done"):
        rights.approve(any_demo_db, client(any_demo_db), request.id, nurse, NOW)


def test_approved_erasure_removes_content_and_keeps_what_the_law_requires(any_demo_db, contact, nurse):
    request, _ = rights.ask(any_demo_db, contact, "erasure", NOW)
    done = rights.approve(any_demo_db, client(any_demo_db), request.id, nurse, NOW)
    assert done.status == "approved"  # Rasa is down: its history is cleared by a later pass
    with any_demo_db.reading() as session:
        inbound = session.scalars(select(InboundMessage).order_by(InboundMessage.id)).all()
        outbound = session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)).all()
        ticket = session.scalars(select(HandoffTicket)).one()
        appointments = session.scalars(select(Appointment)).all()
        profile = session.get(Contact, contact).profile_name
    assert [(m.payload, m.rasa_text, m.media_path) for m in inbound] == [(rights.ERASED, None, None)] * 2
    assert not (Path(settings().media_dir) / "in" / "photo.jpg").exists()
    erased, confirmation = outbound[:2], outbound[2]
    assert [m.body for m in erased] == [rights.ERASED] * 2
    assert erased[1].status == OutboundStatus.failed  # the queued reply is never sent
    assert "cancellato" in confirmation.body["text"]["body"]
    assert confirmation.status in (OutboundStatus.queued, OutboundStatus.held)  # held: the 24-hour window is shut
    assert ticket.summary == {} and profile is None
    assert len(appointments) == 1  # clinical records stay
    assert not consent.state(any_demo_db, contact).granted  # nothing but the confirmation goes out
    assert audit.verify(any_demo_db).ok
    assert rights.retention_pass(any_demo_db, NOW).erasures_finished == 0  # still no Rasa: still waiting
    assert [r.status for r in rights.open_requests(any_demo_db)] == ["approved"]


def test_a_rejected_request_changes_nothing(any_demo_db, contact, nurse):
    request, _ = rights.ask(any_demo_db, contact, "erasure", NOW)
    assert rights.reject(any_demo_db, request.id, nurse, NOW).status == "rejected"
    with any_demo_db.reading() as session:
        assert session.scalars(select(InboundMessage.rasa_text).where(InboundMessage.wamid == "wamid.1")).one()
    assert rights.open_requests(any_demo_db) == []
    assert rights.ask(any_demo_db, contact, "erasure", NOW)[1]  # a new request may follow


def test_retention_empties_old_messages_only_and_never_an_unsent_one(any_demo_db, contact, monkeypatch):
    assert settings().message_retention_days == 365  # the default
    result = rights.retention_pass(any_demo_db, NOW)
    assert (result.inbound, result.outbound) == (1, 1)
    with any_demo_db.reading() as session:
        texts = [m.rasa_text for m in session.scalars(select(InboundMessage).order_by(InboundMessage.id))]
        bodies = [m.body for m in session.scalars(select(OutboundMessage).order_by(OutboundMessage.id))]
    assert texts == [None, None] and bodies[0] == rights.ERASED and bodies[1]["text"]["body"] == "A domani"
    assert (Path(settings().media_dir) / "in" / "photo.jpg").exists()  # sent today: kept
    assert rights.retention_pass(any_demo_db, NOW).inbound == 0  # nothing twice
    monkeypatch.setenv("MESSAGE_RETENTION_DAYS", "0")
    settings.cache_clear()
    assert rights.retention_pass(any_demo_db, NOW + timedelta(days=900)).inbound == 0  # 0 keeps everything


def test_history_events_lose_what_was_said_but_keep_the_dialogue():
    user = {"event": "user", "timestamp": 1, "text": "sono nato il 3/4/1950",
            "parse_data": {"intent": {"name": "inform"}, "entities": [{"entity": "time"}], "text": "x"}}
    assert blank(user)["text"] is None and blank(user)["parse_data"] == {
        "intent": {"name": "inform"}, "entities": [], "text": None}
    assert blank({"event": "bot", "text": "Ciao Giovanni", "data": {"buttons": []}})["text"] is None
    assert blank({"event": "slot", "name": "first_name", "value": "Giovanni"})["value"] is None
    assert blank({"event": "slot", "name": "consented", "value": True})["value"] is True
    assert blank({"event": "action", "name": "action_listen"}) == {"event": "action", "name": "action_listen"}


def test_staff_decide_from_the_command_line(any_demo_db, contact, nurse):
    def clinic(*args: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "DATABASE_URL": any_demo_db.url}
        return subprocess.run([CLINIC, *args], env=env, capture_output=True, text=True, timeout=120)

    request, _ = rights.ask(any_demo_db, contact, "export", NOW)
    assert PHONE in clinic("rights", "list").stdout
    refused = clinic("rights", "approve", str(request.id), "--by", "nobody")
    assert refused.returncode == 1 and "no staff user 'nobody'" in refused.stderr
    assert "carried out" in clinic("rights", "approve", str(request.id), "--by", "dpo").stdout
    again = clinic("rights", "reject", str(request.id), "--by", "dpo")
    assert again.returncode == 1 and "already done" in again.stderr
    assert clinic("rights", "list").stdout.strip() == "no open data requests"
