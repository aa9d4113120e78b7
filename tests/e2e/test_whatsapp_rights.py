"""A patient exercises their data rights on WhatsApp: a registered patient proves who they are first;
staff approve from the command line; the copy arrives as a document and erasure empties the clinic's
message log and Rasa's history (real stack).
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import requests
from sqlalchemy import select

from clinic import consent, rights, staff
from clinic.db import Database
from clinic.models import InboundMessage
from clinic.patients import register_patient
from tests.e2e.test_whatsapp_booking import Chat, consents, contact

CLINIC = str(Path(sys.executable).parent / "clinic")


def decide(stack, *args: str) -> str:
    env = {**os.environ, "DATABASE_URL": stack.database_url, "RASA_URL": stack.rasa_url,
           "RASA_TOKEN": stack.rasa_token, "MEDIA_DIR": str(stack.media_dir)}
    done = subprocess.run([CLINIC, "rights", *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def rasa_events(stack, sender: str) -> list[dict]:
    answer = requests.get(f"{stack.rasa_url}/conversations/{sender}/tracker", timeout=30,
                          params={"token": stack.rasa_token, "include_events": "ALL"})
    answer.raise_for_status()
    return answer.json()["events"]


def test_a_patient_gets_a_copy_of_their_data_then_has_it_erased(whatsapp, stack):
    db = Database(stack.database_url)
    chat = Chat(whatsapp, phone="393339990077", name="Rita Bianchi")
    consents(db, chat)
    staff.add_user(db, "dpo-e2e", "a long enough password", "admin")

    chat.says("vorrei una copia dei miei dati")
    chat.wait_for("registrato la tua richiesta")
    chat.says("potete mandarmi una copia dei miei dati?")
    chat.wait_for("già registrata")  # asking again is the same request
    (request,) = [r for r in rights.open_requests(db) if r.phone == chat.phone]
    assert (request.kind, request.phone) == ("export", chat.phone)
    assert "carried out" in decide(stack, "approve", str(request.id), "--by", "dpo-e2e")
    (document,) = [r["document"] for r in chat.wait_for("copia dei dati") if r.get("type") == "document"]
    assert document["filename"].startswith("data-") and document["id"]  # uploaded to WhatsApp, then sent

    chat.says("cancellate tutti i miei dati per favore")
    chat.wait_for("registrato la tua richiesta")
    (request,) = [r for r in rights.open_requests(db) if r.phone == chat.phone]
    assert request.kind == "erasure"
    assert any(e.get("text") == "vorrei una copia dei miei dati" for e in rasa_events(stack, chat.phone))
    assert "carried out" in decide(stack, "approve", str(request.id), "--by", "dpo-e2e")
    chat.wait_for("cancellato i tuoi messaggi")

    assert not [e for e in rasa_events(stack, chat.phone) if e.get("event") in ("user", "bot")]
    who = contact(db, wa_id=chat.phone)
    with db.reading() as session:
        texts = session.scalars(select(InboundMessage.rasa_text).where(InboundMessage.contact_id == who.id)).all()
    assert texts and set(texts) == {None}
    assert not consent.state(db, who.id).granted and who.profile_name is None

    chat.says("ciao")
    chat.wait_for("finalità")  # a fresh start: the consent step comes first again


def test_a_registered_patient_proves_who_they_are_before_a_data_request_is_recorded(whatsapp, stack):
    db = Database(stack.database_url)
    chat = Chat(whatsapp, phone="393339990078", name="Ada Lovato")
    register_patient(db, wa_id=chat.phone, first_name="Ada", last_name="Lovato", date_of_birth=date(1971, 5, 9),
                     language="it")
    consents(db, chat)

    chat.says("vorrei una copia dei miei dati")
    chat.wait_for("data di nascita")
    assert not [r for r in rights.open_requests(db) if r.phone == chat.phone]  # nothing before the check
    chat.says("10/05/1971")
    chat.wait_for("non corrisponde")
    chat.says("9/5/1971")
    chat.wait_for("registrato la tua richiesta")
    (request,) = [r for r in rights.open_requests(db) if r.phone == chat.phone]
    assert request.kind == "export"
