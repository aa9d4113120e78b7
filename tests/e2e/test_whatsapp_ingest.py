"""Patients on WhatsApp through the webhook ingest, as `make run` wires it: the sandbox delivers to
`python -m clinic.whatsapp.ingest`, which stores and acknowledges, then nudges the real Rasa stack."""

from __future__ import annotations

import time

import requests

from clinic.db import Database
from clinic.models import InboundStatus
from clinic.whatsapp.webhook import sign
from tests.e2e.test_whatsapp_booking import Chat, contact, dump, inbound_rows, options, slot_options


def test_a_patient_books_through_the_ingest(whatsapp_via_ingest, ingest, stack):
    db = Database(stack.database_url)
    chat = Chat(whatsapp_via_ingest, phone="393471114455", name="Marta")
    chat.says("buongiorno, vorrei prenotare una visita dal cardiologo lunedì mattina")
    asked = chat.wait_for("Prima di continuare")  # consent first
    [everything] = [o for o in options(asked) if o["title"] == "Accetto tutto"]
    chat.taps(everything)
    chat.wait_for("ho registrato le tue scelte")
    chat.says("vorrei prenotare una visita dal cardiologo lunedì mattina")
    chat.wait_for("nome e cognome")
    chat.says("Marta Fontana")
    chat.wait_for("data di nascita")
    chat.says("14/02/1979")
    turn = chat.wait_for("registrato")
    if not slot_options(turn):  # the list may follow its text a moment later
        try:
            turn = chat.wait_for("slot_id", timeout=8)
        except AssertionError:  # asked for the day first
            chat.says("lunedì mattina")
            turn = chat.wait_for("slot_id")
    chat.taps(slot_options(turn)[0])
    confirm = chat.wait_for("Confermi?", "Marta Fontana")
    [yes] = [o for o in options(confirm) if o["id"] == "/affirm"]
    chat.taps(yes)
    chat.wait_for("Prenotato")

    rows = inbound_rows(db, contact(db, wa_id=chat.phone).id)
    assert {r.status for r in rows} == {InboundStatus.handled}
    deliveries = whatsapp_via_ingest.webhooks()
    assert deliveries and {d["url"] for d in deliveries} == {ingest}
    assert {a["status"] for d in deliveries for a in d["attempts"]} == {200}  # messages and statuses


def test_a_message_redelivered_to_the_ingest_gets_one_answer(whatsapp_via_ingest, stack):
    chat = Chat(whatsapp_via_ingest, phone="447700900778", name="Tom")
    whatsapp_via_ingest.inject_many(
        [{"from": chat.phone, "name": "Tom", "type": "text", "text": "what are your opening hours?"}], duplicate=True
    )
    chat.wait_for("Mon")
    time.sleep(3)  # time for a second answer, if the duplicate were handled
    assert len([r for r in chat.received() if "Mon" in dump(r)]) == 1


def test_the_ingest_verifies_meta_and_refuses_unsigned_posts(whatsapp_via_ingest, ingest):
    sandbox = whatsapp_via_ingest
    query = {"hub.mode": "subscribe", "hub.verify_token": sandbox.verify_token, "hub.challenge": "737373"}
    answer = requests.get(ingest, params=query, timeout=10)
    assert (answer.status_code, answer.text) == (200, "737373")
    assert requests.post(ingest, data=b"{}", timeout=10).status_code == 403
    assert requests.post(ingest, data=b"{", timeout=10,
                         headers={"X-Hub-Signature-256": sign(sandbox.app_secret, b"{")}).status_code == 400
