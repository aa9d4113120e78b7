"""A patient reaches a nurse on WhatsApp: the bot steps aside, the nurse answers from the inbox, the
bot stays quiet (but for emergency guidance), and after hand-back it answers the next message, never
the backlog."""

from __future__ import annotations

from sqlalchemy import select

from clinic import handoff
from clinic.db import Database
from clinic.models import InboundMessage, InboundStatus, OutboundMessage
from tests.e2e.test_whatsapp_booking import Chat, contact
from tests.inbox.conftest import InboxClient, add_nurse
from tests.whatsapp_sandbox import wait_until

REPLY_SECONDS = 90


def handled(db: Database, contact_id: int) -> bool:
    with db.reading() as session:
        statuses = session.scalars(select(InboundMessage.status).where(InboundMessage.contact_id == contact_id))
        return all(status is InboundStatus.handled for status in statuses)


def bot_messages(db: Database, contact_id: int) -> int:
    with db.reading() as session:
        return len(session.scalars(select(OutboundMessage.id).where(
            OutboundMessage.contact_id == contact_id, OutboundMessage.source == "bot")).all())


def test_a_nurse_takes_over_and_hands_back(whatsapp, stack, inbox):
    db = Database(stack.database_url)
    chat = Chat(whatsapp, phone="447700900777", name="Nora")
    chat.says("hi, can I talk to a nurse please?")
    chat.wait_for("nurse")
    nora = contact(db, wa_id=chat.phone)
    ticket = wait_until(lambda: handoff.open_ticket_for(db, nora.id), timeout=REPLY_SECONDS, what="a ticket")
    assert (ticket.reason, ticket.language) == ("request_human", "en")

    add_nurse(db, "bianca")
    nurse = InboxClient(inbox)
    assert nurse.login("bianca", "correct-horse-battery").status_code == 303
    assert nurse.post(f"/tickets/{ticket.id}/claim").status_code == 303
    nurse.get(f"/tickets/{ticket.id}")
    assert nurse.post(f"/tickets/{ticket.id}/reply", {"text": "Hello Nora, I'm Bianca, a nurse."}).status_code == 303
    chat.wait_for("I'm Bianca")

    bot_before = bot_messages(db, nora.id)
    chat.says("thanks! one question about my pills")
    chat.says("can I take them before the blood test?")
    wait_until(lambda: handled(db, nora.id), timeout=REPLY_SECONDS, what="the backlog to be handled")
    assert bot_messages(db, nora.id) == bot_before  # the bot said nothing while the nurse held it
    texts = [e["text"] for e in nurse.get(f"/api/tickets/{ticket.id}").json()["entries"]]
    assert "can I take them before the blood test?" in texts  # the nurse sees the patient's messages

    chat.says("now I have a crushing pain in my chest")  # a red flag still gets guidance at once
    chat.wait_for("112")
    assert handoff.open_ticket_for(db, nora.id).priority == "urgent"

    assert nurse.post(f"/tickets/{ticket.id}/resolve").status_code == 303
    assert handoff.open_ticket_for(db, nora.id) is None
    chat.says("what are your opening hours?")
    chat.wait_for("Mon")
    assert bot_messages(db, nora.id) == bot_before + 2  # the emergency guidance and the next answer only
