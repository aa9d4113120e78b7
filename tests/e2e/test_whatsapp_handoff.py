"""A patient reaches a nurse on WhatsApp: the bot steps aside, the nurse answers from the inbox in
Chromium (text and a document) and sees the patient's next messages live, the bot stays quiet (but
for emergency guidance and a STOP), and after hand-back it answers the next message, never the backlog."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from clinic import consent, handoff
from clinic.db import Database
from clinic.models import InboundMessage, InboundStatus, OutboundMessage
from tests.browser import needs_chromium
from tests.e2e.test_whatsapp_booking import Chat, consents, contact
from tests.inbox.conftest import PASSWORD, add_nurse
from tests.whatsapp_sandbox import wait_until

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect
pytestmark = needs_chromium

REPLY_SECONDS = 90
LEAFLET = b"%PDF-1.4 how to prepare for a blood test"


def handled(db: Database, contact_id: int) -> bool:
    with db.reading() as session:
        statuses = session.scalars(select(InboundMessage.status).where(InboundMessage.contact_id == contact_id))
        return all(status is InboundStatus.handled for status in statuses)


def bot_messages(db: Database, contact_id: int) -> int:
    with db.reading() as session:
        return len(session.scalars(select(OutboundMessage.id).where(
            OutboundMessage.contact_id == contact_id, OutboundMessage.source == "bot")).all())


def test_a_nurse_takes_over_in_the_browser_and_hands_back(whatsapp, stack, inbox, browser):
    db = Database(stack.database_url)
    chat = Chat(whatsapp, phone="447700900777", name="Nora")
    consents(db, chat)
    chat.says("hi, can I talk to a nurse please?")
    chat.wait_for("nurse")
    nora = contact(db, wa_id=chat.phone)
    ticket = wait_until(lambda: handoff.open_ticket_for(db, nora.id), timeout=REPLY_SECONDS, what="a ticket")
    assert (ticket.reason, ticket.language) == ("request_human", "en")

    add_nurse(db, "bianca")
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    expect.set_options(timeout=15_000)
    page.goto(inbox + "/login")
    page.get_by_label("Username").fill("bianca")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Nora").click()
    page.get_by_role("button", name="Claim this conversation").click()
    page.get_by_label("Your reply").fill("Hello Nora, I'm Bianca, a nurse. Here is the leaflet.")
    page.get_by_label("Attach a photo or document").set_input_files(
        files=[{"name": "leaflet.pdf", "mimeType": "application/pdf", "buffer": LEAFLET}])
    page.get_by_role("button", name="Send reply").click()
    (received,) = chat.wait_for("I'm Bianca")
    assert received["type"] == "document" and received["document"]["filename"] == "leaflet.pdf"
    assert whatsapp.http.get(f"{whatsapp.base_url}/_sandbox/media/{received['document']['id']}").content == LEAFLET

    bot_before = bot_messages(db, nora.id)
    chat.says("thanks! one question about my pills")
    chat.says("can I take them before the blood test?")
    transcript = page.locator("#transcript")
    expect(transcript).to_contain_text("can I take them before the blood test?")  # live, without a reload
    wait_until(lambda: handled(db, nora.id), timeout=REPLY_SECONDS, what="the backlog to be handled")
    assert bot_messages(db, nora.id) == bot_before  # the bot said nothing while the nurse held it

    chat.says("now I have a crushing pain in my chest")  # a red flag still gets guidance at once
    chat.wait_for("112")
    assert handoff.open_ticket_for(db, nora.id).priority == "urgent"
    chat.says("STOP")  # so does a STOP: consent withdrawn and confirmed, the nurse still sees it
    chat.wait_for("won't send you any more messages")
    assert not any(consent.allows(db, nora.id, purpose) for purpose in consent.PURPOSES)
    expect(transcript).to_contain_text("STOP")

    page.get_by_role("button", name="Resolve: hand back to the bot").click()
    expect(page).to_have_url(inbox + "/")
    context.close()
    assert handoff.open_ticket_for(db, nora.id) is None
    chat.says("what are your opening hours?")
    chat.wait_for("Opening hours")  # the answer, not a second handoff (whose text names "mon-fri" too)
    assert handoff.open_ticket_for(db, nora.id) is None
    assert bot_messages(db, nora.id) == bot_before + 3  # the guidance, the STOP confirmation, the next answer
