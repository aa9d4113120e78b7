"""Where events happen, the audit trail gets them, in the same transaction, with ids and no patient data."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from clinic import audit, handoff, scheduling, staff
from clinic.models import AuditEntry, Contact, ContactPatient, OutboundStatus, Patient, Relationship
from clinic.whatsapp import store
from tests.conftest import DEMO_NOW, DEMO_TODAY
from tests.handoff.conftest import NOW, add_contact, add_staff
from tests.whatsapp.test_client_outbox import CONFIG, Clock, accept, status, texts
from tests.whatsapp.test_webhook_store import PHONE, batch

MESSAGE = "Buongiorno, vorrei prenotare una visita"  # the text of the `text` payload


def entries(db, kind_prefix: str = "") -> list[dict]:
    with db.reading() as session:
        found = session.scalars(select(AuditEntry).where(AuditEntry.kind.startswith(kind_prefix))
                                .order_by(AuditEntry.seq))
        return [audit.as_dict(e) for e in found]


def free_slot(db, offset: int = 0) -> scheduling.FreeSlot:
    query = scheduling.SlotQuery(*scheduling.day_window(DEMO_TODAY + timedelta(days=1)), specialty="cardiology")
    return scheduling.free_slots(db, query, now=DEMO_NOW, limit=10)[offset]


def add_patient(db, wa_id: str = PHONE) -> tuple[int, int]:
    with db.transaction() as session:
        patient = Patient(first_name="Ottavia", last_name="Quaglieri", date_of_birth=date(1961, 7, 14), language="it")
        contact = Contact(wa_id=wa_id, profile_name="Ottavia Q.", language="it")
        session.add_all([patient, contact])
        session.flush()
        session.add(ContactPatient(contact_id=contact.id, patient_id=patient.id, relation=Relationship.self))
        return patient.id, contact.id


def test_booking_changes_record_who_and_the_old_and_new_state(any_demo_db):
    db = any_demo_db
    patient_id, contact_id = add_patient(db)
    first, second = free_slot(db, 0), free_slot(db, 1)
    booked = scheduling.book(db, patient_id=patient_id, slot_id=first.id, actor=f"contact:{PHONE}", now=DEMO_NOW)
    scheduling.confirm(db, appointment_id=booked.id, actor="staff:rossi", now=DEMO_NOW)
    moved = scheduling.reschedule(db, appointment_id=booked.id, new_slot_id=second.id, actor="cli", now=DEMO_NOW)
    scheduling.cancel(db, appointment_id=moved.id, reason="feeling better", actor="cli", now=DEMO_NOW)

    trail = entries(db, "appointment.")
    assert [(e["kind"], e["actor"], e["subject"]) for e in trail] == [
        ("appointment.booked", f"contact:{contact_id}", f"appointment:{booked.id}"),  # the id, not the number
        ("appointment.confirmed", "staff:rossi", f"appointment:{booked.id}"),
        ("appointment.rescheduled", "cli", f"appointment:{moved.id}"),
        ("appointment.cancelled", "cli", f"appointment:{moved.id}"),
    ]
    start = lambda slot: slot.start_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # noqa: E731
    assert trail[0]["data"] == {"patient_id": patient_id, "old": None, "new": {
        "appointment_id": booked.id, "status": "booked", "slot_id": first.id, "start_at": start(first)}}
    assert trail[1]["data"]["old"]["status"] == "booked" and trail[1]["data"]["new"]["status"] == "confirmed"
    assert trail[2]["data"]["old"] == {"appointment_id": booked.id, "status": "confirmed", "slot_id": first.id,
                                       "start_at": start(first)}
    assert trail[2]["data"]["new"] == {"appointment_id": moved.id, "status": "booked", "slot_id": second.id,
                                       "start_at": start(second)}
    assert (trail[3]["data"]["old"]["status"], trail[3]["data"]["new"]["status"], trail[3]["data"]["late"]) == (
        "booked", "cancelled", False)
    assert audit.verify(db).ok


def test_a_refused_booking_leaves_no_entry(demo_db):
    patient_id, _ = add_patient(demo_db)
    slot = free_slot(demo_db)
    scheduling.book(demo_db, patient_id=patient_id, slot_id=slot.id, actor="cli", now=DEMO_NOW)
    with pytest.raises(scheduling.SlotTaken):
        scheduling.book(demo_db, patient_id=patient_id, slot_id=slot.id, actor="cli", now=DEMO_NOW)
    assert len(entries(demo_db, "appointment.")) == 1 and audit.verify(demo_db).ok


def test_staff_sign_ins_failures_lockouts_and_sign_outs(db):
    user = staff.add_user(db, "rossi", "long-enough-1")
    staff.authenticate(db, "rossi", "long-enough-1", now=NOW)
    with pytest.raises(staff.LoginFailed):
        staff.authenticate(db, "nobody", "long-enough-1", now=NOW)
    for minute in range(4):
        with pytest.raises(staff.LoginFailed):
            staff.authenticate(db, "rossi", "nope", now=NOW + timedelta(minutes=minute))
    with pytest.raises(staff.LockedOut):
        staff.authenticate(db, "rossi", "nope", now=NOW + timedelta(minutes=4))
    with pytest.raises(staff.LockedOut):
        staff.authenticate(db, "rossi", "long-enough-1", now=NOW + timedelta(minutes=5))
    token, _ = staff.start_session(db, user.id)
    staff.end_session(db, token)

    trail = [(e["kind"], e["actor"], e["data"]) for e in entries(db, "staff.")]
    me = f"staff:{user.id}"
    assert trail[:3] == [("staff.login", me, {}), ("staff.login_failed", "anonymous", {"cause": "unknown_user"}),
                         ("staff.login_failed", me, {"cause": "password", "failures": 1})]
    assert trail[6] == ("staff.login_failed", me, {"cause": "password", "failures": 5})
    assert trail[7] == ("staff.locked_out", "system", {"staff_id": user.id, "until": "2027-03-01T09:19:00.000000Z"})
    assert trail[8] == ("staff.login_refused", me, {"cause": "locked", "until": "2027-03-01T09:19:00.000000Z"})
    assert trail[9] == ("staff.logout", me, {})
    assert "long-enough-1" not in json.dumps(entries(db)) and "nobody" not in json.dumps(entries(db))


def test_ticket_events_and_staff_actions_on_tickets(any_db):
    contact_id = add_contact(any_db)
    rossi, bianchi = add_staff(any_db, "rossi"), add_staff(any_db, "bianchi")
    ticket = handoff.open_ticket(any_db, contact_id, "medical_question", summary={"slots": {"symptom": "fever"}})
    handoff.open_ticket(any_db, contact_id, "emergency")
    handoff.log_event(any_db, rossi, "view", ticket.id)
    handoff.claim(any_db, ticket.id, rossi)
    handoff.replied(any_db, ticket.id, rossi)
    handoff.add_note(any_db, ticket.id, rossi, "Sounds like the flu")
    handoff.reassign(any_db, ticket.id, bianchi, rossi)
    handoff.release(any_db, ticket.id, bianchi)
    handoff.claim(any_db, ticket.id, bianchi)
    handoff.resolve(any_db, ticket.id, bianchi)

    trail = entries(any_db)
    assert [(e["kind"], e["actor"]) for e in trail] == [
        ("ticket.opened", "bot"), ("ticket.updated", "bot"), ("staff.view", f"staff:{rossi}"),
        ("staff.claim", f"staff:{rossi}"), ("staff.reply", f"staff:{rossi}"), ("staff.note", f"staff:{rossi}"),
        ("staff.reassign", f"staff:{rossi}"), ("staff.release", f"staff:{bianchi}"),
        ("staff.claim", f"staff:{bianchi}"), ("staff.resolve", f"staff:{bianchi}"),
    ]
    assert trail[0]["data"] == {"ticket_id": ticket.id, "contact_id": contact_id, "reason": "medical_question",
                                "priority": "normal"}
    assert (trail[1]["data"]["reason"], trail[1]["data"]["priority"]) == ("emergency", "urgent")
    assert trail[6]["data"] == {"ticket_id": ticket.id, "to_staff_id": bianchi}
    assert {e["subject"] for e in trail} == {f"ticket:{ticket.id}"}
    assert "fever" not in json.dumps(trail) and "flu" not in json.dumps(trail)
    assert audit.verify(any_db).ok


def test_messages_in_and_out_are_recorded_by_ids(any_db):
    from clinic.whatsapp.client import WhatsAppClient

    [stored] = store.save(any_db, batch("text"))
    [inbound] = entries(any_db, "message.inbound")
    assert (inbound["actor"], inbound["subject"]) == (f"contact:{stored.contact_id}", f"inbound:{stored.id}")
    assert inbound["data"] == {"inbound_id": stored.id, "wamid": stored.wamid, "contact_id": stored.contact_id,
                               "type": "text"}

    clock = Clock(stored.sent_at + timedelta(minutes=1))
    client = WhatsAppClient(any_db, CONFIG, default_language="it", clock=clock)
    client.contact_wrote(stored.contact_id, stored.sent_at)
    [out_id] = client.enqueue(stored.contact_id, texts("Ecco i suoi orari"), source="bot")
    accept(client, out_id, "wamid.OUT1")
    client.apply_status(status("wamid.OUT1", "delivered", at=clock.now))
    client.apply_status(status("wamid.OUT1", "read", at=clock.now))
    client.apply_status(status("wamid.OUT1", "delivered", at=clock.now))  # late: no move, no entry

    trail = entries(any_db, "message.outbound")
    assert [(e["kind"], e["actor"]) for e in trail] == [("message.outbound.queued", "bot")] + [
        ("message.outbound.status", "whatsapp")] * 3
    assert trail[0]["data"] == {"outbound_id": out_id, "contact_id": stored.contact_id, "kind": "text",
                                "status": "queued"}
    assert [(e["data"]["old"], e["data"]["new"], e["data"]["wamid"]) for e in trail[1:]] == [
        ("sending", "sent", "wamid.OUT1"), ("sent", "delivered", "wamid.OUT1"), ("delivered", "read", "wamid.OUT1")]


def test_a_failed_outbound_message_records_meta_s_code(any_db):
    from clinic.whatsapp.client import WhatsAppClient

    clock = Clock(NOW)
    contact_id = add_contact(any_db, last_inbound_at=NOW - timedelta(hours=1))
    client = WhatsAppClient(any_db, CONFIG, default_language="it", clock=clock)
    [out_id] = client.enqueue(contact_id, texts("ciao"), source="inbox:rossi")
    accept(client, out_id, "wamid.OUT2")
    client.apply_status(status("wamid.OUT2", "failed", code=131026))
    last = entries(any_db, "message.outbound.status")[-1]
    assert last["data"] == {"outbound_id": out_id, "contact_id": contact_id, "wamid": "wamid.OUT2", "old": "sent",
                            "new": OutboundStatus.failed.value, "error_code": 131026}


def test_no_entry_holds_the_patient_s_name_phone_birth_date_or_message_text(any_demo_db):
    db = any_demo_db
    patient_id, contact_id = add_patient(db)
    store.save(db, batch("text"))
    appointment = scheduling.book(db, patient_id=patient_id, slot_id=free_slot(db).id, actor=f"contact:{PHONE}",
                                  reason="dolore al petto da tre giorni", now=DEMO_NOW)
    scheduling.cancel(db, appointment_id=appointment.id, reason="sto meglio, grazie", actor=f"contact:{PHONE}",
                      now=DEMO_NOW)
    dump = "".join(audit.export(db, DEMO_NOW - timedelta(days=3650), DEMO_NOW + timedelta(days=3650)))
    assert dump.count("\n") >= 3
    for secret in ("Ottavia", "Quaglieri", "1961-07-14", PHONE, MESSAGE, "Giulia", "IT.1502576394655843",
                   "dolore", "meglio"):
        assert secret not in dump, secret
