"""Webhook batches into the database (SQLite and PostgreSQL): once per wamid, even when deliveries race;
contacts keyed on phone number and user id; a changed number followed.
"""

import json
import threading
import time
from datetime import date
from pathlib import Path

from sqlalchemy import func, select

from clinic import patients
from clinic.models import Contact, ContactPatient, InboundStatus, OutboundMessage, OutboundStatus, Relationship
from clinic.models import InboundMessage as InboundRow
from clinic.whatsapp import store
from clinic.whatsapp.client import WhatsAppClient
from clinic.whatsapp.types import GraphConfig, WebhookBatch
from clinic.whatsapp.webhook import parse

PAYLOADS = Path(__file__).parent / "payloads"
PHONE, BSUID = "393471234567", "IT.1502576394655843"


def batch(name: str, **replace: str):
    text = (PAYLOADS / f"{name}.json").read_text(encoding="utf-8")
    for old, new in replace.items():
        text = text.replace(old, new)
    return parse(json.loads(text))


def count(db, model) -> int:
    with db.reading() as session:
        return session.scalar(select(func.count()).select_from(model))


def contacts(db) -> list[Contact]:
    with db.reading() as session:
        return list(session.scalars(select(Contact).order_by(Contact.id)))


def test_a_message_is_stored_once_and_a_redelivery_is_not_returned(any_db):
    [stored] = store.save(any_db, batch("text"))
    assert stored.for_bot and stored.wamid.startswith("wamid.")
    assert store.save(any_db, batch("text")) == []
    assert count(any_db, InboundRow) == 1


def test_racing_deliveries_of_the_same_messages_store_each_once_without_errors(any_db):
    errors, results = [], []
    start = threading.Barrier(8)

    def deliver():
        try:
            start.wait()
            results.append(store.save(any_db, batch("multi_entry")))
        except Exception as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(s.wamid for r in results for s in r) == sorted(m.wamid for m in batch("multi_entry").messages)
    assert count(any_db, InboundRow) == 3 and count(any_db, Contact) == 2


def test_one_store_for_several_patients_opens_each_window_and_keeps_a_doubled_message_once(any_db):
    with any_db.transaction() as session:  # two patients whose replies wait for them to write
        for phone in (PHONE, "447700900123"):
            contact = Contact(wa_id=phone)
            session.add(contact)
            session.flush()
            session.add(OutboundMessage(contact_id=contact.id, kind="text", body={"type": "text"}, source="inbox",
                                        status=OutboundStatus.held))
    now = batch("multi_entry", **{'"1772000000"': f'"{int(time.time())}"'})
    doubled = WebhookBatch(messages=now.messages + now.messages[:1], statuses=[])  # Meta's duplicate, in one group
    client = WhatsAppClient(any_db, GraphConfig("http://127.0.0.1:9", "v23.0", "106540352242922", "t", "s", "v"))
    stored = store.save(any_db, doubled, wrote=client.contacts_wrote_in)
    assert sorted(s.wamid for s in stored) == sorted(m.wamid for m in now.messages)
    assert count(any_db, InboundRow) == 3
    with any_db.reading() as session:
        assert list(session.scalars(select(OutboundMessage.status))) == [OutboundStatus.queued] * 2
        assert all(c.last_inbound_at is not None for c in session.scalars(select(Contact)))


def test_reactions_and_system_messages_are_recorded_as_handled(any_db):
    store.save(any_db, batch("text"))
    [reaction] = store.save(any_db, batch("reaction"))
    assert not reaction.for_bot
    with any_db.reading() as session:
        row = session.get(InboundRow, reaction.id)
        assert row.status is InboundStatus.handled and row.rasa_text is None and row.handled_at is not None


def test_the_profile_name_is_kept_and_updated(any_db):
    store.save(any_db, batch("text"))
    store.save(any_db, batch("location", **{"Giulia Bianchi": "Giulia B."}))
    [contact] = contacts(any_db)
    assert contact.profile_name == "Giulia B."


def test_a_user_first_known_by_user_id_then_by_number_is_one_contact(any_db):
    store.save(any_db, batch("user_id_only"))
    patient_id = patients.register_patient(any_db, wa_id="IT.7702576394655777", first_name="Sam", last_name="Lee",
                                           date_of_birth=date(1990, 1, 1), language="en")
    store.save(any_db, batch("text", **{BSUID: "IT.7702576394655777"}))  # now with the number too
    [contact] = contacts(any_db)
    assert (contact.wa_id, contact.user_id) == (PHONE, "IT.7702576394655777")
    assert [p.id for p in patients.linked_patients(any_db, PHONE)] == [patient_id]
    with any_db.reading() as session:
        assert set(session.scalars(select(InboundRow.contact_id))) == {contact.id}


def test_a_changed_number_moves_the_contact(any_db):
    store.save(any_db, batch("text"))
    store.save(any_db, batch("system_user_changed_number"))
    [contact] = contacts(any_db)
    assert (contact.wa_id, contact.user_id) == ("393479999999", "IT.9902576394655999")


def test_a_changed_number_already_writing_merges_the_two_contacts(any_db):
    store.save(any_db, batch("text"))
    with any_db.transaction() as session:
        old = session.scalars(select(Contact)).one()
        session.add(OutboundMessage(contact_id=old.id, kind="text", body={"type": "text"}, source="bot"))
    patient_id = patients.register_patient(any_db, wa_id=PHONE, first_name="Giulia", last_name="Bianchi",
                                           date_of_birth=date(1980, 4, 12), language="it")
    new_number = batch("location", **{PHONE: "393479999999", "0010": "0099", BSUID: "IT.9902576394655999"})
    store.save(any_db, new_number)  # the patient wrote from the new number before Meta's notice
    assert len(contacts(any_db)) == 2
    store.save(any_db, batch("system_user_changed_number"))
    [contact] = contacts(any_db)
    assert (contact.wa_id, contact.user_id) == ("393479999999", "IT.9902576394655999")
    assert [p.id for p in patients.linked_patients(any_db, "393479999999")] == [patient_id]
    with any_db.reading() as session:
        assert set(session.scalars(select(InboundRow.contact_id))) == {contact.id}
        assert set(session.scalars(select(OutboundMessage.contact_id))) == {contact.id}


def test_pending_messages_come_out_per_contact_in_order_with_their_conversation_id(any_db):
    store.save(any_db, batch("multi_entry"))
    pending = store.contacts_with_pending(any_db)
    assert len(pending) == 2 and all(at.tzinfo is not None for at in pending.values())
    first_contact = min(pending)
    message = store.next_pending(any_db, first_contact)
    assert (message.sender_id, message.rasa_text) == (PHONE, "primo")
    store.mark_handled(any_db, message.id)
    assert store.next_pending(any_db, first_contact).rasa_text == "secondo"
    assert store.record_failure(any_db, message.id + 1, max_attempts=2) is False
    assert store.record_failure(any_db, message.id + 1, max_attempts=2) is True
    assert store.next_pending(any_db, first_contact) is None


def test_a_user_id_only_contact_is_the_patient_record_of_its_conversation(any_db):
    store.save(any_db, batch("user_id_only"))
    sender_id = "IT.7702576394655777"
    patients.register_patient(any_db, wa_id=sender_id, first_name="Sam", last_name="Lee",
                              date_of_birth=date(1990, 1, 1), language="en", relation=Relationship.self)
    patients.remember_language(any_db, sender_id, "en")
    profile = patients.contact_profile(any_db, sender_id)
    assert (profile.language, profile.first_name) == ("en", "Sam")
    [contact] = contacts(any_db)
    assert (contact.wa_id, contact.user_id) == (None, sender_id)
    assert count(any_db, ContactPatient) == 1
    assert store.contact_for_sender_id(any_db, sender_id) == contact.id


def test_the_language_tie_breaker_reads_an_italian_user_id(monkeypatch):
    from actions.sender import choose_language, tie_breaker
    from clinic.settings import settings

    monkeypatch.setenv("DEFAULT_LANGUAGE", "en")
    settings.cache_clear()
    assert choose_language("/share_attachment", None, None, None, tie_breaker("GB.7702576394655777")) == "en"
    assert choose_language("/share_attachment", None, None, None, tie_breaker("IT.7702576394655777")) == "it"
    assert tie_breaker("447700900001") == "447700900001"
