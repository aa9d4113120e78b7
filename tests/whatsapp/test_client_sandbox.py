"""The sending client against the local WhatsApp sandbox: real HTTP, real failures, no mocks.

The sandbox answers like Meta (limits, error codes, status webhooks); faults are injected through its
test API. Backoff delays are tiny here, so retries run fast; nothing asserts on timing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from clinic.models import Contact, OutboundMessage, OutboundStatus, SendTurns, utcnow
from clinic.whatsapp import webhook
from clinic.whatsapp.client import WINDOW_SOURCE, WhatsAppClient
from clinic.whatsapp.outbound import template_message, to_graph_messages
from clinic.whatsapp.types import WINDOW_REPLY_PAYLOAD

PHONE = "393331234567"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
PDF = b"%PDF-1.4\n% clinic test document\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"


def make_client(db, sandbox, **options) -> WhatsAppClient:
    settings = {"retry_base_delay": 0.01, "retry_max_delay": 0.05, "pair_interval": 0.2, "pair_burst": 3,
                "request_timeout": 5.0, "default_language": "it"}
    return WhatsAppClient(db, sandbox.config, **{**settings, **options})


def add_contact(db, *, wa_id=PHONE, user_id=None, last_inbound_at="now", name="Maria"):
    with db.transaction() as session:
        contact = Contact(wa_id=wa_id, user_id=user_id, profile_name=name, language="it",
                          last_inbound_at=utcnow() if last_inbound_at == "now" else last_inbound_at)
        session.add(contact)
        session.flush()
        return contact.id


def rows(db) -> dict[int, OutboundMessage]:
    with db.reading() as session:
        return {r.id: r for r in session.execute(select(OutboundMessage).order_by(OutboundMessage.id)).scalars()}


class StatusFeed:
    """Status webhooks the receiver got → `client.apply_status`, as the channel does."""

    def __init__(self, receiver, client: WhatsAppClient) -> None:
        self.receiver, self.client, self.seen = receiver, client, 0

    def pump(self) -> None:
        received = self.receiver.snapshot()
        for item in received[self.seen :]:
            for update in webhook.parse(item.json).statuses:
                self.client.apply_status(update)
        self.seen = len(received)


async def drain(client: WhatsAppClient, until, feed: StatusFeed | None = None, timeout: float = 20.0):
    """Delivery passes (and status callbacks) until `until()` holds; fails the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        await client.deliver_due()
        if feed is not None:
            feed.pump()
        if until():
            return
        if time.monotonic() > deadline:
            raise AssertionError("outbox did not settle")
        await asyncio.sleep(0.02)


def settled(db, *ids):
    done = {OutboundStatus.sent, OutboundStatus.delivered, OutboundStatus.read, OutboundStatus.failed}
    return lambda: all(rows(db)[i].status in done for i in ids)


def bodies_received(sandbox, who=PHONE) -> list[dict]:
    try:
        return [m["request"] for m in sandbox.received(who)]
    except AssertionError:  # the sandbox does not know the patient yet
        return []


def rejected_codes(sandbox) -> list[int]:
    return [r["error"]["code"] for r in sandbox.rejected() if "error" in r]


@pytest.fixture
async def client(db, sandbox):
    sandbox.open_window(PHONE)
    client = make_client(db, sandbox)
    yield client
    await client.close()


# --- every form, in order ------------------------------------------------------------------------------


async def test_a_turn_goes_out_in_order_with_uploaded_document(db, sandbox, client, tmp_path):
    contact = add_contact(db)
    report = tmp_path / "referto_42.pdf"
    report.write_bytes(PDF)
    map_png = tmp_path / "mappa.png"
    map_png.write_bytes(PNG)
    slots = [
        {"title": f"Lunedì {d} marzo ore 10:00 con la Dott.ssa Rossi", "payload": f'/choose_slot{{"slot_id": "{d}"}}'}
        for d in range(1, 13)
    ]
    turn = [
        *to_graph_messages({"text": "Ecco gli orari liberi", "buttons": slots, "custom": {"list_button": "Scegli"}}),
        *to_graph_messages({"attachment": {"type": "document", "path": str(report), "caption": "Il tuo referto"}}),
        *to_graph_messages({"attachment": {"type": "image", "path": str(map_png), "caption": "Come arrivare"}}),
    ]
    ids = client.enqueue(contact, turn, source="bot")
    await drain(client, settled(db, *ids))

    received = sandbox.received(PHONE)
    assert [m["type"] for m in received] == ["interactive", "interactive", "document", "image"]
    lists = [m["view"]["list"] for m in received[:2]]
    assert [len(s["rows"]) for lst in lists for s in lst["sections"]] == [6, 6]
    assert lists[0]["button"] == "Scegli"
    assert lists[0]["sections"][0]["rows"][0]["id"] == '/choose_slot{"slot_id": "1"}'
    assert received[0]["view"]["body"].endswith("1/2") and received[1]["view"]["body"] == "2/2"
    document = received[2]["view"]
    assert (document["filename"], document["caption"]) == ("referto_42.pdf", "Il tuo referto")
    assert document["id"] and document["link"] is None  # uploaded through the media endpoint
    image = received[3]["view"]
    assert (bool(image["id"]), image["caption"]) == (True, "Come arrivare")
    stored = rows(db)
    assert [stored[i].wamid for i in ids] == [m["id"] for m in received]
    assert [m["biz_opaque_callback_data"] for m in received] == [f"outbox:{i}" for i in ids]
    assert stored[ids[2]].body["document"]["id"] == document["id"]  # a retry would not upload again


async def test_a_contact_known_only_by_user_id_is_reached_by_recipient(db, sandbox, client):
    user_id = "IT.13491208655302741918"
    sandbox.set_patient(user_id, last_inbound_hours_ago=0)
    contact = add_contact(db, wa_id=None, user_id=user_id)
    (row_id,) = client.enqueue(contact, to_graph_messages({"text": "Ciao"}), source="bot")
    await drain(client, settled(db, row_id))
    (message,) = sandbox.received(user_id)
    assert message["request"]["recipient"] == user_id and "to" not in message["request"]


async def test_templates_carry_parameters_and_quick_reply_payloads(db, sandbox, client):
    sandbox.close_window(PHONE)
    contact = add_contact(db, last_inbound_at=None)
    body = template_message("appointment_reminder", "it", ["Anna", "3 marzo", "10:30", "Dott. Rossi", "Sede", "-"],
                            quick_replies=['/confirm_appointment{"appointment_id": "7"}', "/reschedule", None])
    (row_id,) = client.enqueue(contact, [body], source="outreach:reminder")
    await drain(client, settled(db, row_id))
    (message,) = sandbox.received(PHONE)
    assert message["view"]["body"] == ("Promemoria per Anna: visita 3 marzo alle 10:30 con Dott. Rossi, presso Sede. - "
                                       "Puoi confermare, spostare o disdire qui sotto.")
    assert [b["payload"] for b in message["view"]["buttons"]] == [
        '/confirm_appointment{"appointment_id": "7"}', "/reschedule", "Annulla"]


# --- retries -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "code"),
    [("http_429", None), ("http_500", None), ("http_503", None), ("error", 130429), ("error", 131056),
     ("error", 131000), ("error", 131016), ("http_500", 1), ("http_503", 2)],
)
async def test_transient_errors_are_retried_until_accepted(db, sandbox, client, kind, code):
    contact = add_contact(db)
    sandbox.fault(kind, code=code, times=2)
    (row_id,) = client.enqueue(contact, to_graph_messages({"text": "Promemoria"}), source="bot")
    await drain(client, settled(db, row_id))
    row = rows(db)[row_id]
    assert (row.status, row.attempts) == (OutboundStatus.sent, 3)
    assert len(sandbox.received(PHONE)) == 1


async def test_a_timeout_is_retried(db, sandbox):
    sandbox.open_window(PHONE)
    client = make_client(db, sandbox, request_timeout=0.3)
    try:
        contact = add_contact(db)
        sandbox.fault("timeout", times=1, delay=1.0)
        (row_id,) = client.enqueue(contact, to_graph_messages({"text": "Promemoria"}), source="bot")
        await drain(client, settled(db, row_id))
    finally:
        await client.close()
    row = rows(db)[row_id]
    assert (row.status, row.attempts) == (OutboundStatus.sent, 2)
    assert row.wamid in [m["id"] for m in sandbox.received(PHONE)]


async def test_a_connection_error_is_retried(db, sandbox):
    contact = add_contact(db)
    unreachable = make_client(db, sandbox, max_attempts=2)
    unreachable.config = dataclasses.replace(sandbox.config, api_base_url="http://127.0.0.1:9")
    (row_id,) = unreachable.enqueue(contact, to_graph_messages({"text": "x"}), source="bot")
    try:
        await drain(unreachable, settled(db, row_id))
    finally:
        await unreachable.close()
    row = rows(db)[row_id]
    assert (row.status, row.attempts, row.error_code) == (OutboundStatus.failed, 2, None)


@pytest.mark.parametrize(("code", "status"), [(131026, None), (131009, None), (100, None), (131051, None),
                                              (132001, None), (132000, None), (130497, 403)])
async def test_permanent_errors_are_not_retried_and_do_not_block_the_next_message(db, sandbox, client, code, status):
    contact = add_contact(db)
    sandbox.fault("error", code=code, times=1, status=status)
    first, second = client.enqueue(contact, to_graph_messages({"text": "uno"}) + to_graph_messages({"text": "due"}),
                                   source="bot")
    await drain(client, settled(db, first, second))
    stored = rows(db)
    assert (stored[first].status, stored[first].attempts, stored[first].error_code) == (OutboundStatus.failed, 1,
                                                                                         code)
    assert stored[second].status is OutboundStatus.sent
    assert [m["request"]["text"]["body"] for m in sandbox.received(PHONE)] == ["due"]


async def test_account_problems_are_retried_and_logged_at_error(db, sandbox, client, caplog):
    contact = add_contact(db)
    sandbox.fault("error", code=190, status=401, times=1)
    (row_id,) = client.enqueue(contact, to_graph_messages({"text": "x"}), source="bot")
    with caplog.at_level(logging.INFO, logger="clinic.whatsapp.client"):
        await drain(client, settled(db, row_id))
    assert rows(db)[row_id].status is OutboundStatus.sent
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and "190" in errors[0].getMessage()


async def test_after_max_attempts_the_message_fails(db, sandbox, caplog):
    sandbox.open_window(PHONE)
    client = make_client(db, sandbox, max_attempts=3)
    try:
        contact = add_contact(db)
        sandbox.fault("http_500", times=10)
        (row_id,) = client.enqueue(contact, to_graph_messages({"text": "x"}), source="bot")
        with caplog.at_level(logging.INFO, logger="clinic.whatsapp.client"):
            await drain(client, settled(db, row_id))
    finally:
        await client.close()
    row = rows(db)[row_id]
    assert (row.status, row.attempts, row.error_code) == (OutboundStatus.failed, 3, 131000)
    assert any(r.levelno == logging.ERROR and f"outbox {row_id}" in r.getMessage() for r in caplog.records)
    assert sandbox.received(PHONE) == []


async def test_an_undeliverable_message_fails_by_status_callback(db, sandbox, client, webhook_receiver):
    contact = add_contact(db)
    sandbox.fault("failed", code=131026, times=1)
    (row_id,) = client.enqueue(contact, to_graph_messages({"text": "x"}), source="bot")
    feed = StatusFeed(webhook_receiver, client)
    await drain(client, lambda: rows(db)[row_id].status is OutboundStatus.failed, feed)
    row = rows(db)[row_id]
    assert (row.error_code, row.attempts) == (131026, 1)


# --- the 24-hour window --------------------------------------------------------------------------------


async def test_closed_window_sends_the_template_and_releases_on_reply(db, sandbox, client, webhook_receiver):
    sandbox.close_window(PHONE)
    contact = add_contact(db, last_inbound_at=datetime.now(timezone.utc) - timedelta(hours=30))
    held = client.enqueue(contact, to_graph_messages({"text": "Il referto è pronto"}), source="outreach:results")
    feed = StatusFeed(webhook_receiver, client)
    await drain(client, lambda: len(bodies_received(sandbox)) == 1, feed)
    (template,) = sandbox.received(PHONE)
    assert template["view"]["template"] == "clinic_new_message"
    assert template["view"]["body"].startswith("Ciao Maria,")
    assert WINDOW_REPLY_PAYLOAD in str(template["request"]["template"]["components"])
    assert rows(db)[held[0]].status is OutboundStatus.held

    sandbox.tap_quick_reply(PHONE, WINDOW_REPLY_PAYLOAD, "Leggi", context=template["id"])  # the template's button
    client.contact_wrote(contact, datetime.now(timezone.utc))
    await drain(client, settled(db, *held), feed)
    assert [m["type"] for m in sandbox.received(PHONE)] == ["template", "text"]
    assert 131047 not in rejected_codes(sandbox)


async def test_a_131047_from_meta_turns_into_the_window_fallback(db, sandbox, client, webhook_receiver):
    sandbox.close_window(PHONE)  # Meta's clock says closed; ours thinks it is open
    contact = add_contact(db)
    first, second = client.enqueue(contact, to_graph_messages({"text": "uno"}) + to_graph_messages({"text": "due"}),
                                   source="bot")
    feed = StatusFeed(webhook_receiver, client)

    def template_sent() -> bool:
        return any(r.source == WINDOW_SOURCE and r.status is not OutboundStatus.queued for r in rows(db).values())

    await drain(client, template_sent, feed)
    stored = rows(db)
    assert stored[first].status is OutboundStatus.held and stored[first].error_code == 131047
    assert stored[second].status is OutboundStatus.held
    assert len([r for r in stored.values() if r.source == WINDOW_SOURCE]) == 1

    sandbox.say(PHONE, "ciao")
    client.contact_wrote(contact, datetime.now(timezone.utc))
    await drain(client, lambda: rows(db)[second].status in (OutboundStatus.sent, OutboundStatus.delivered), feed)
    delivered = [m for m in sandbox.received(PHONE) if m["status"] != "failed"]
    assert [m["type"] for m in delivered] == ["template", "text", "text"]
    assert [m["request"]["text"]["body"] for m in delivered[1:]] == ["uno", "due"]


# --- pacing --------------------------------------------------------------------------------------------


async def test_a_burst_to_one_patient_never_trips_the_pair_rate(db, sandbox, client):
    sandbox.configure(pair_burst=3, pair_per_second=5.0)  # the client paces 3 at once, then one per 0.2 s
    contact = add_contact(db)
    ids = client.enqueue(contact, [b for i in range(9) for b in to_graph_messages({"text": f"Messaggio {i}"})],
                         source="bot")
    await drain(client, settled(db, *ids))
    assert [m["request"]["text"]["body"] for m in sandbox.received(PHONE)] == [f"Messaggio {i}" for i in range(9)]
    assert 131056 not in rejected_codes(sandbox)
    assert all(rows(db)[i].attempts == 1 for i in ids)


async def test_a_turn_goes_out_at_once_within_the_burst(db, sandbox, client):
    sandbox.configure(pair_burst=3, pair_per_second=0.001)  # no refill at all during the test
    contact = add_contact(db)
    turn = to_graph_messages({"text": "Ecco", "buttons": [{"title": "Ok", "payload": "/affirm"}]}) + \
        to_graph_messages({"text": "Altro"}) + to_graph_messages({"image": "https://example.org/mappa.png"})
    ids = client.enqueue(contact, turn, source="bot")
    await drain(client, settled(db, *ids))
    assert len(sandbox.received(PHONE)) == 3 and rejected_codes(sandbox) == []


async def test_without_pacing_the_pair_rate_is_hit_and_retried_in_order(db, sandbox):
    """The control for the test above: the sandbox's pair limit is real, and 131056 is retried."""
    sandbox.open_window(PHONE)
    sandbox.configure(pair_burst=3, pair_per_second=5.0)
    client = make_client(db, sandbox, pair_burst=100, max_attempts=50)
    try:
        contact = add_contact(db)
        ids = client.enqueue(contact, [b for i in range(9) for b in to_graph_messages({"text": f"M{i}"})],
                             source="bot")
        await drain(client, settled(db, *ids))
    finally:
        await client.close()
    assert 131056 in rejected_codes(sandbox)
    assert [m["request"]["text"]["body"] for m in sandbox.received(PHONE)] == [f"M{i}" for i in range(9)]


async def test_two_sending_processes_share_the_numbers_throughput(any_db, sandbox):
    """The channel and the outreach worker send from one phone number: each client (as each process)
    paces at the ceiling, and together they stay under it (each alone would go at 10/s: 20/s together)."""
    sandbox.configure(messages_per_second=10)
    config = dataclasses.replace(sandbox.config, max_messages_per_second=10)
    patients = [f"39333555{n:04d}" for n in range(40)]
    for who in patients:
        sandbox.open_window(who)
    contacts = [add_contact(any_db, wa_id=who) for who in patients]
    channel, outreach = (WhatsAppClient(any_db, config, retry_base_delay=0.01, retry_max_delay=0.05,
                                        default_language="it") for _ in range(2))
    try:
        ids = [channel.enqueue(c, to_graph_messages({"text": "x"}), source="bot")[0] for c in contacts[:20]]
        ids += [outreach.enqueue(c, to_graph_messages({"text": "y"}), source="outreach")[0] for c in contacts[20:]]
        # both deliver at once, racing for the rows as two processes would
        await asyncio.gather(channel.deliver_due(), outreach.deliver_due())
        await drain(channel, settled(any_db, *ids))
    finally:
        await channel.close()
        await outreach.close()
    assert sum(len(sandbox.received(who)) for who in patients) == 40
    assert 130429 not in rejected_codes(sandbox)


async def test_a_clock_that_went_back_does_not_stall_sending(db, sandbox, client):
    """The shared schedule is in wall-clock time: an hour ahead of now means the clock was set back."""
    with db.transaction() as session:
        session.add(SendTurns(phone_number_id=sandbox.config.phone_number_id, next_turn=time.time() + 3600))
    ids = client.enqueue(add_contact(db), to_graph_messages({"text": "Buongiorno"}), source="bot")
    await drain(client, settled(db, *ids))
    assert rows(db)[ids[0]].status is OutboundStatus.sent


# --- read receipts, media, the background loop ---------------------------------------------------------


async def test_mark_read_with_the_typing_indicator(db, sandbox, client):
    wamid = sandbox.say(PHONE, "Vorrei prenotare")
    assert await client.mark_read(wamid, typing=True) is True
    assert sandbox.sent(PHONE)[0]["read"] is True
    assert await client.mark_read("wamid.unknown") is False  # best effort: never raises


async def test_media_upload_and_download(db, sandbox, client):
    media_id = await client.upload_media(PDF, "application/pdf", "referto.pdf")
    data, mime = await client.download_media(media_id)
    assert (data, mime) == (PDF, "application/pdf")


async def test_an_unsupported_upload_is_a_permanent_failure(db, sandbox, client, tmp_path):
    contact = add_contact(db)
    odd = tmp_path / "notes.xyz"
    odd.write_bytes(b"?")
    (row_id,) = client.enqueue(contact, to_graph_messages({"attachment": str(odd)}), source="bot")
    await drain(client, settled(db, row_id))
    row = rows(db)[row_id]
    assert (row.status, row.error_code, row.attempts) == (OutboundStatus.failed, 131053, 1)


async def test_a_missing_local_file_fails_the_message(db, sandbox, client, tmp_path):
    contact = add_contact(db)
    (row_id,) = client.enqueue(contact, to_graph_messages({"attachment": str(tmp_path / "gone.pdf")}), source="bot")
    await drain(client, settled(db, row_id))
    assert rows(db)[row_id].status is OutboundStatus.failed


async def test_the_background_loop_sends_as_soon_as_it_is_kicked(db, sandbox):
    sandbox.open_window(PHONE)
    client = make_client(db, sandbox, poll_interval=3600)  # only a kick can wake it
    contact = add_contact(db)
    await client.start()
    try:
        await asyncio.sleep(0.05)  # the loop's first pass found nothing and went to sleep
        (row_id,) = await asyncio.to_thread(client.enqueue, contact, to_graph_messages({"text": "x"}), source="bot")
        deadline = time.monotonic() + 10
        while rows(db)[row_id].status is not OutboundStatus.sent:
            assert time.monotonic() < deadline, "the kick did not wake the delivery loop"
            await asyncio.sleep(0.02)
    finally:
        await client.close()
    assert len(sandbox.received(PHONE)) == 1


async def test_a_reply_is_sent_by_its_caller_but_never_ahead_of_an_earlier_message(db, sandbox, client):
    contact = add_contact(db)
    text = to_graph_messages
    [first] = await client.reply(contact, text({"text": "Buongiorno Maria"}), source="bot")  # no delivery loop runs
    assert [b["text"]["body"] for b in bodies_received(sandbox)] == ["Buongiorno Maria"]
    assert rows(db)[first].status is OutboundStatus.sent
    [reminder] = client.enqueue(contact, text({"text": "Promemoria: visita domani"}), source="outreach:reminder")
    [answer] = await client.reply(contact, text({"text": "Ecco i suoi appuntamenti"}), source="bot")
    assert len(bodies_received(sandbox)) == 1  # queued behind the reminder, which the loop sends first
    await drain(client, settled(db, reminder, answer))
    assert [b["text"]["body"] for b in bodies_received(sandbox)] == [
        "Buongiorno Maria", "Promemoria: visita domani", "Ecco i suoi appuntamenti"]


async def test_finish_sends_what_was_queued_then_stops_the_loop(db, sandbox):
    """A one-shot job starts the loop, queues while it sends, and `finish()` leaves nothing due behind."""
    phones = [f"3933300001{i:02d}" for i in range(30)]
    for phone in phones:
        sandbox.open_window(phone)
    client = make_client(db, sandbox, poll_interval=3600, concurrency=4)
    contacts = [add_contact(db, wa_id=phone) for phone in phones]
    await client.start()
    try:
        for contact in contacts:
            await asyncio.to_thread(client.enqueue, contact, to_graph_messages({"text": "x"}), source="bot")
        await client.finish()
        assert client._task is None
        assert {r.status for r in rows(db).values()} == {OutboundStatus.sent}
    finally:
        await client.close()
    assert [len(sandbox.received(phone)) for phone in phones] == [1] * len(phones)


async def test_an_encrypted_report_is_decrypted_only_for_the_upload(db, sandbox, client, tmp_path):
    from clinic import crypto

    contact = add_contact(db)
    stored = tmp_path / "a1b2.pdf.enc"
    stored.write_bytes(crypto.encrypt(PDF))
    attachment = {"type": "document", "path": str(stored), "encrypted": True, "filename": "emocromo-7.pdf",
                  "mime": "application/pdf"}
    (row_id,) = client.enqueue(contact, to_graph_messages({"custom": {"document": attachment}}), source="bot")
    await drain(client, settled(db, row_id))
    (document,) = sandbox.received(PHONE)
    assert (document["type"], document["view"]["filename"]) == ("document", "emocromo-7.pdf")
    data, mime = await client.download_media(document["view"]["id"])
    assert (data, mime) == (PDF, "application/pdf")
    body = rows(db)[row_id].body["document"]
    assert set(body) == {"id", "filename"}  # neither the path nor the flag reaches Meta


async def test_a_report_that_does_not_decrypt_fails_the_message(db, sandbox, client, tmp_path):
    contact = add_contact(db)
    stored = tmp_path / "tampered.pdf.enc"
    stored.write_bytes(b"not a fernet token")
    attachment = {"type": "document", "path": str(stored), "encrypted": True, "mime": "application/pdf"}
    (row_id,) = client.enqueue(contact, to_graph_messages({"custom": {"document": attachment}}), source="bot")
    await drain(client, settled(db, row_id))
    assert rows(db)[row_id].status is OutboundStatus.failed
