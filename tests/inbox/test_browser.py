"""The inbox as a nurse uses it: Debian's Chromium through Playwright, against the inbox process."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from clinic import handoff
from clinic.models import InboundMessage, TicketStatus, utcnow
from tests.browser import needs_chromium
from tests.inbox.conftest import PASSWORD, add_contact, add_nurse

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect
pytestmark = needs_chromium


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000)
    expect.set_options(timeout=10_000)
    yield page
    context.close()


def sign_in(page, base_url: str, username: str = "rossi", password: str = PASSWORD) -> None:
    page.goto(base_url + "/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def patient_writes(db, contact_id: int, text: str, wamid: str) -> None:
    now = utcnow()
    with db.transaction() as s:
        s.add(InboundMessage(wamid=wamid, contact_id=contact_id, phone_number_id="1", type="text",
                             payload={"text": {"body": text}}, rasa_text=text, sent_at=now, received_at=now))


def test_wrong_password_is_said_plainly(db, start_inbox, page):
    add_nurse(db, "rossi")
    inbox = start_inbox()
    sign_in(page, inbox.base_url, password="not-the-password")
    expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")


def test_new_tickets_appear_live_with_a_badge_and_title(db, start_inbox, page):
    add_nurse(db, "rossi")
    first = add_contact(db, "393336660001", "Anna Prima")
    handoff.open_ticket(db, first, "request_human", now=utcnow() - timedelta(minutes=3))
    inbox = start_inbox()
    sign_in(page, inbox.base_url)
    expect(page.get_by_role("link", name="Anna Prima")).to_be_visible()
    expect(page).to_have_title(re.compile(r"^\(1\) Queue"))

    urgent = add_contact(db, "393336660002", "Bruno Urgente")
    handoff.open_ticket(db, urgent, "emergency")
    rows = page.locator("#queue tbody tr")
    expect(rows.first).to_contain_text("Bruno Urgente")  # urgent first, without a reload
    expect(rows).to_have_count(2)
    expect(page.locator("#badge")).to_have_text("2")
    expect(page).to_have_title(re.compile(r"^\(2\) Queue"))
    expect(page.locator("#announce")).to_contain_text("new urgent")


def test_claim_live_transcript_canned_reply_and_resolve(db, start_inbox, page):
    add_nurse(db, "rossi")
    contact = add_contact(db, "393336660003", "Carla Terzi")
    patient_writes(db, contact, "Mia figlia ha la febbre", "wamid.b1")
    ticket = handoff.open_ticket(db, contact, "medical_question", language="it",
                                 summary={"intent": "ask_medical_question", "slots": {"symptom": "febbre"}})
    handoff.save_canned(db, "it", "Presa in carico", "Buongiorno, sono l'infermiera di turno.")
    inbox = start_inbox()
    sign_in(page, inbox.base_url)

    page.get_by_role("button", name="Claim conversation with Carla Terzi").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Carla Terzi")
    expect(page.locator("#transcript")).to_contain_text("Mia figlia ha la febbre")
    expect(page.locator(".summary")).to_contain_text("Giulia Bianchi")
    expect(page.locator(".summary")).to_contain_text("symptom: febbre")

    patient_writes(db, contact, "Adesso ha 39 di febbre", "wamid.b2")  # no reload from here on
    expect(page.locator("#transcript li").last).to_contain_text("Adesso ha 39 di febbre")

    page.get_by_label("Canned response").select_option(label="[it] Presa in carico")
    page.get_by_role("button", name="Insert").click()
    expect(page.get_by_label("Your reply")).to_have_value("Buongiorno, sono l'infermiera di turno.")
    page.get_by_role("button", name="Send reply").click()
    expect(page.locator("#transcript li.out").last).to_contain_text("Buongiorno, sono l'infermiera di turno.")

    page.get_by_label("New note").fill("Richiamare il pediatra")
    page.get_by_role("button", name="Add note").click()
    expect(page.locator("#notes")).to_contain_text("Richiamare il pediatra")

    page.get_by_role("button", name="Resolve: hand back to the bot").click()
    expect(page.get_by_text("Nobody is waiting.")).to_be_visible()
    assert handoff.get(db, ticket.id).status is TicketStatus.resolved


def test_keyboard_only_sign_in(db, start_inbox, page):
    add_nurse(db, "rossi")
    inbox = start_inbox()
    page.goto(inbox.base_url + "/login")
    expect(page.get_by_label("Username")).to_be_focused()  # autofocus: typing before it lands would be lost
    page.keyboard.type("rossi")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Conversations waiting for a nurse")).to_be_visible()


def test_the_second_nurse_is_told_who_claimed_first(db, start_inbox, browser):
    add_nurse(db, "rossi"), add_nurse(db, "bianchi")
    ticket = handoff.open_ticket(db, add_contact(db, "393336660004", "Dario Quarto"), "request_human")
    inbox = start_inbox()
    pages = []
    for username in ("rossi", "bianchi"):
        page = browser.new_context().new_page()
        page.set_default_timeout(10_000)
        sign_in(page, inbox.base_url, username)
        page.goto(f"{inbox.base_url}/tickets/{ticket.id}")
        pages.append(page)
    pages[0].get_by_role("button", name="Claim this conversation").click()
    expect(pages[0].get_by_label("Your reply")).to_be_visible()
    expect(pages[1].locator("#ticket-status")).to_have_text("claimed by rossi")  # live on the other screen
    pages[1].get_by_role("button", name="Claim this conversation").click()
    expect(pages[1].get_by_role("alert")).to_have_text("This conversation is already claimed by rossi.")
    for page in pages:
        page.context.close()


def test_closed_window_is_said_before_sending(db, start_inbox, page):
    nurse = add_nurse(db, "rossi")
    ticket = handoff.open_ticket(db, add_contact(db, "393336660005", "Elena Quinta", hours_ago=30), "fallback")
    handoff.claim(db, ticket.id, nurse)
    inbox = start_inbox()
    sign_in(page, inbox.base_url)
    page.goto(f"{inbox.base_url}/tickets/{ticket.id}")
    expect(page.locator("#window-closed")).to_be_visible()
    expect(page.locator("#window")).to_have_text("closed")
    page.get_by_label("Your reply").fill("La richiamo domani")
    page.get_by_role("button", name="Send template and queue reply").click()
    expect(page.locator("#transcript li.out", has_text="La richiamo domani")).to_contain_text("held")
