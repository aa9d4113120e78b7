"""Patients on WhatsApp: signed webhooks injected by the sandbox reach the real stack (Rasa with the
`whatsapp` channel, the action server), and what the bot sends comes back through the Graph API."""

from __future__ import annotations

import json
import time

import requests
from sqlalchemy import select

from clinic import consent, crypto, scheduling
from clinic.db import Database
from clinic.models import AppointmentStatus, Contact, InboundStatus, Patient
from clinic.models import InboundMessage as InboundRow
from clinic.patients import contact_for
from clinic.whatsapp.webhook import sign

REPLY_SECONDS = 60


class Chat:
    """One patient's phone: what they send (through the sandbox) and what they received since."""

    def __init__(self, sandbox, phone: str | None = None, name: str = "Test Patient", user_id: str | None = None):
        self.sandbox, self.phone, self.name, self.user_id = sandbox, phone, name, user_id
        self.seen = 0

    @property
    def who(self) -> str:
        return self.phone or self.user_id

    def send(self, **spec) -> str:
        ids = {"from": self.phone} if self.phone else {"user_id": self.user_id, "hide_phone": True}
        if self.user_id:
            ids["user_id"] = self.user_id
        return self.sandbox.inject({**ids, "name": self.name, **spec})["messages"][0]["id"]

    def says(self, text: str) -> str:
        return self.send(type="text", text=text)

    def taps(self, option: dict) -> str:
        kind = "list_reply" if option["kind"] == "list" else "button_reply"
        return self.send(type=kind, id=option["id"], title=option["title"])

    def received(self) -> list[dict]:
        try:
            return self.sandbox.received(self.who)
        except AssertionError:  # the sandbox does not know the patient yet
            return []

    def wait_for(self, *words: str, timeout: float = REPLY_SECONDS) -> list[dict]:
        """The requests the patient received since the last wait, once one of them has all `words`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            new = self.received()[self.seen:]
            if any(all(w.lower() in dump(r).lower() for w in words) for r in new):
                time.sleep(0.5)  # the rest of the same turn (a list after its text)
                new = self.received()[self.seen:]
                self.seen += len(new)
                return [r["request"] for r in new]
            time.sleep(0.2)
        raise AssertionError(f"no message with {words} within {timeout}s; got {[dump(r) for r in self.received()]}")


def dump(record: dict) -> str:
    return json.dumps(record.get("request", record), ensure_ascii=False)


def options(requests: list[dict]) -> list[dict]:
    """Every tappable option (reply buttons and list rows) in what was received."""
    found = []
    for request in requests:
        action = (request.get("interactive") or {}).get("action") or {}
        for button in action.get("buttons", []):
            found.append({"kind": "button", **button["reply"]})
        for section in action.get("sections", []):
            for row in section.get("rows", []):
                found.append({"kind": "list", "id": row["id"], "title": row["title"]})
    return found


def slot_options(requests: list[dict]) -> list[dict]:
    return [o for o in options(requests) if "slot_id" in o["id"]]


def inbound_rows(db: Database, contact_id: int) -> list[InboundRow]:
    with db.reading() as session:
        return list(session.scalars(select(InboundRow).where(InboundRow.contact_id == contact_id)
                                    .order_by(InboundRow.id)))


def contact(db: Database, **key) -> Contact:
    with db.reading() as session:
        return session.scalars(select(Contact).filter_by(**key)).one()


def consents(db: Database, chat: Chat) -> None:
    """The patient has been through the consent step before (for tests about something else)."""
    with db.transaction() as session:
        contact_id = contact_for(session, wa_id=chat.phone, user_id=chat.user_id).id
    consent.decide(db, contact_id, consent.PURPOSES, how="test")


def test_a_new_patient_consents_then_books_a_visit_on_whatsapp_by_tapping_the_offered_options(whatsapp, stack):
    db = Database(stack.database_url)
    chat = Chat(whatsapp, phone="393471112233", name="Lucia")
    chat.says("buongiorno, vorrei prenotare una visita dal cardiologo lunedì mattina")
    asked = chat.wait_for("Prima di continuare")
    assert any("Informativa privacy" in dump({"request": r}) for r in asked)
    [everything] = [o for o in options(asked) if o["title"] == "Accetto tutto"]
    assert everything["kind"] == "list"  # four choices: a list message
    chat.taps(everything)
    chat.wait_for("ho registrato le tue scelte")
    chat.says("vorrei prenotare una visita dal cardiologo lunedì mattina")
    chat.wait_for("nome e cognome")
    chat.says("Lucia Maria Ferraro")
    chat.wait_for("data di nascita")
    chat.says("03/09/1985")
    turn = chat.wait_for("registrato")
    if not slot_options(turn):  # the list may follow its text a moment later
        try:
            turn = chat.wait_for("slot_id", timeout=8)
        except AssertionError:  # asked for the day first
            chat.says("lunedì mattina")
            turn = chat.wait_for("slot_id")
    choice = slot_options(turn)[0]
    chat.taps(choice)
    confirm = chat.wait_for("Confermi?", "Lucia Maria Ferraro")
    [yes] = [o for o in options(confirm) if o["id"] == "/affirm"]
    chat.taps(yes)
    chat.wait_for("Prenotato")

    with db.reading() as session:
        patient = session.scalars(select(Patient).where(Patient.last_name == "Ferraro",
                                                        Patient.first_name == "Lucia Maria")).one()
    [appointment] = scheduling.upcoming_appointments(db, [patient.id])
    assert appointment.specialty == "cardiology" and appointment.status is AppointmentStatus.booked
    assert f'"{appointment.slot_id}"' in choice["id"]
    lucia = contact(db, wa_id="393471112233")
    assert lucia.profile_name == "Lucia" and lucia.last_inbound_at is not None
    rows = inbound_rows(db, lucia.id)
    assert [r.type for r in rows][-2:] == ["interactive", "interactive"]  # the two taps
    assert {r.status for r in rows} == {InboundStatus.handled}
    assert all(whatsapp.message(r.wamid).get("read") for r in rows)  # blue ticks for every message


def test_a_redelivered_message_gets_one_answer(whatsapp, stack):
    chat = Chat(whatsapp, phone="447700900555", name="Sam")
    whatsapp.inject_many([{"from": chat.phone, "name": "Sam", "type": "text", "text": "what are your opening hours?"}],
                         duplicate=True)
    chat.wait_for("Mon")
    time.sleep(3)  # time for a second answer, if the duplicate were handled
    hours = [r for r in chat.received() if "Mon" in dump(r)]
    assert len(hours) == 1
    db = Database(stack.database_url)
    assert len(inbound_rows(db, contact(db, wa_id=chat.phone).id)) == 1


def test_attachments_and_unreadable_messages_get_a_polite_answer_in_the_patients_language(whatsapp, stack):
    italian = Chat(whatsapp, phone="393471112299", name="Paola")
    consents(Database(stack.database_url), italian)
    italian.send(type="image", content_base64="/9j/4AAQSkZJRgABAQ==", mime_type="image/jpeg", caption="ricetta")
    italian.wait_for("ho ricevuto")
    italian.send(type="unsupported", unsupported_type="poll_creation")
    italian.wait_for("non riesco ad aprire")
    english = Chat(whatsapp, phone="447700900666", name="Kate")
    english.says("hello, what are your opening hours?")
    english.wait_for("Mon")
    english.send(type="unknown")
    english.wait_for("can't open this kind of message")

    db = Database(stack.database_url)
    [image, _] = inbound_rows(db, contact(db, wa_id=italian.phone).id)
    assert image.media_path and crypto.read_file(stack.media_dir / image.media_path).startswith(b"\xff\xd8")
    assert not (stack.media_dir / image.media_path).read_bytes().startswith(b"\xff\xd8")  # encrypted at rest


def test_a_patient_known_only_by_user_id_is_answered_by_recipient(whatsapp, stack):
    chat = Chat(whatsapp, user_id="GB.4402576394655444", name="Alex")
    chat.says("hello, what are your opening hours?")
    chat.wait_for("Mon")
    [answer] = [r for r in chat.received() if "Mon" in dump(r)]
    assert answer["request"].get("recipient") == "GB.4402576394655444" and "to" not in answer["request"]
    db = Database(stack.database_url)
    alex = contact(db, user_id="GB.4402576394655444")
    assert alex.wa_id is None


def test_the_real_server_verifies_meta_and_refuses_unsigned_posts(whatsapp, stack):
    query = {"hub.mode": "subscribe", "hub.verify_token": whatsapp.verify_token, "hub.challenge": "424242"}
    answer = requests.get(stack.webhook_url, params=query, timeout=10)
    assert (answer.status_code, answer.text) == (200, "424242")
    query["hub.verify_token"] = "wrong"
    assert requests.get(stack.webhook_url, params=query, timeout=10).status_code == 403
    assert requests.post(stack.webhook_url, data=b"{}", timeout=10).status_code == 403
    assert requests.post(stack.webhook_url, data=b"{", timeout=10,
                         headers={"X-Hub-Signature-256": sign(whatsapp.app_secret, b"{")}).status_code == 400

