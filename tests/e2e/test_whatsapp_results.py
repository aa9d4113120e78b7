"""Lab results on the patient's phone through the real stack: the results-ready template, the date of
birth asked before anything is released, the report as a WhatsApp document or as a single-use link
to the download page, and a nurse after too many wrong dates (or for a question on the report)."""

from __future__ import annotations

import re
from datetime import date

import pytest
import requests

from clinic import handoff, results
from clinic.db import Database
from clinic.models import ResultStatus, utcnow
from clinic.outreach import results as results_ready
from clinic.outreach.quiet_hours import next_allowed
from clinic.patients import register_patient
from clinic.settings import settings
from clinic.whatsapp.client import WhatsAppClient
from tests.e2e.test_whatsapp_booking import Chat, consents, contact, options
from tests.whatsapp_sandbox import wait_until

PDF = b"%PDF-1.4\n% e2e lab report\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"
LINK = re.compile(r"https?://\S+/r/([\w-]+)")


@pytest.fixture(autouse=True)
def stack_results_dir(stack, monkeypatch):
    """This process registers results where the stack's processes read them."""
    monkeypatch.setenv("RESULTS_DIR", str(stack.results_dir))
    settings.cache_clear()


def patient(db: Database, chat: Chat, first: str, last: str, born: date, language: str = "it") -> int:
    patient_id = register_patient(db, wa_id=chat.phone, first_name=first, last_name=last, date_of_birth=born,
                                  language=language)
    consents(db, chat)
    return patient_id


async def announce(db: Database, sandbox) -> None:
    """One pass of the outreach worker's results-ready job, delivered through the sandbox."""
    client = WhatsAppClient(db, sandbox.config, default_language="it")
    try:
        now = next_allowed(utcnow(), settings().quiet_hours, settings().zone)
        assert results_ready.send_due(db, client, now).sent >= 1
        assert await client.deliver_due() >= 1
    finally:
        await client.close()


def media_bytes(sandbox, media_id: str) -> bytes:
    answer = requests.get(f"{sandbox.base_url}/_sandbox/media/{media_id}", timeout=30)
    answer.raise_for_status()
    return answer.content


async def test_the_ready_template_then_a_wrong_and_a_right_date_bring_the_document(whatsapp, stack):
    db = Database(stack.database_url)
    chat = Chat(whatsapp, phone="393471230001", name="Paola")
    patient_id = patient(db, chat, "Paola", "Ferri", date(1971, 8, 23))
    report, _ = results.register(db, patient_id, "Emocromo completo", PDF, delivery="document")

    await announce(db, whatsapp)
    [template] = chat.wait_for("results_ready")
    payload = template["template"]["components"][-1]["parameters"][0]["payload"]
    assert payload == results_ready.button_payload(report.id)
    [shown] = whatsapp.received(chat.phone)
    assert shown["view"]["body"] == "Ciao Paola, i tuoi referti sono pronti."  # nothing about the result

    whatsapp.tap_quick_reply(chat.phone, payload, "Vedi referti", context=shown["id"])
    chat.wait_for("data di nascita", "Paola")
    chat.says("23/08/1972")
    chat.wait_for("non corrisponde", "Tentativi rimasti: 2")
    assert results.get(db, report.id).status is ResultStatus.ready
    chat.says("23/08/1971")
    turn = chat.wait_for("Domanda a infermiere")
    [document] = [m for m in turn if m.get("type") == "document"]
    assert document["document"]["filename"] == f"emocromo-completo-{report.id}.pdf"
    assert media_bytes(whatsapp, document["document"]["id"]) == PDF
    assert results.get(db, report.id).status is ResultStatus.delivered

    [nurse] = [o for o in options(turn) if o["id"] == "/request_human"]
    chat.taps(nurse)
    chat.wait_for("infermier")
    paola = contact(db, wa_id=chat.phone)
    ticket = wait_until(lambda: handoff.open_ticket_for(db, paola.id), timeout=60, what="a ticket")
    assert ticket.reason == "results_question" and ticket.summary["result_id"] == report.id


async def test_the_link_mode_sends_a_single_use_link_whose_page_asks_the_date_again(whatsapp, stack, inbox):
    db = Database(stack.database_url)
    chat = Chat(whatsapp, phone="447700900555", name="Oliver")
    patient_id = patient(db, chat, "Oliver", "Grant", date(1988, 2, 29), language="en")
    report, _ = results.register(db, patient_id, "Lipid panel", PDF, delivery="link")

    chat.says("are my test results ready?")
    chat.wait_for("date of birth", "Oliver")
    chat.says("29/02/1988")
    turn = chat.wait_for("/r/")
    [token] = LINK.findall(" ".join(str(m) for m in turn))
    assert results.get(db, report.id).status is ResultStatus.ready  # a link sent is not a report delivered

    page = requests.get(f"{inbox}/r/{token}", timeout=30)
    assert page.status_code == 200 and "Date of birth" in page.text
    wrong = requests.post(f"{inbox}/r/{token}", data={"date_of_birth": "1988-03-01"}, timeout=30)
    assert wrong.status_code == 403 and "Attempts left" in wrong.text
    right = requests.post(f"{inbox}/r/{token}", data={"date_of_birth": "1988-02-29"}, timeout=30)
    assert right.status_code == 200 and right.content == PDF
    assert requests.post(f"{inbox}/r/{token}", data={"date_of_birth": "1988-02-29"}, timeout=30).status_code == 410
    assert results.get(db, report.id).status is ResultStatus.delivered


async def test_three_wrong_dates_lock_the_results_and_call_a_nurse(whatsapp, stack):
    db = Database(stack.database_url)
    chat = Chat(whatsapp, phone="393471230003", name="Bruno")
    patient_id = patient(db, chat, "Bruno", "Sala", date(1960, 1, 15))
    report, _ = results.register(db, patient_id, "Glicemia", PDF, delivery="link")

    chat.says("i miei referti sono pronti?")
    chat.wait_for("data di nascita")
    chat.says("15/01/1961")
    chat.wait_for("Tentativi rimasti: 2")
    chat.says("16/01/1960")
    chat.wait_for("Tentativi rimasti: 1")
    chat.says("01/01/1950")
    turn = chat.wait_for("bloccato")
    assert not LINK.findall(" ".join(str(m) for m in turn))
    bruno = contact(db, wa_id=chat.phone)
    ticket = wait_until(lambda: handoff.open_ticket_for(db, bruno.id), timeout=60, what="a ticket")
    assert ticket.reason == "identity_failed" and ticket.summary["result_id"] == report.id
    assert results.get(db, report.id).status is ResultStatus.ready
