"""The sending client's database side: the 24-hour window, status callbacks, atomic claims, pacing.

No HTTP here (see test_client_sandbox.py for that): these run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from clinic.models import Contact, OutboundMessage, OutboundStatus
from clinic.whatsapp.client import WINDOW_SOURCE, WhatsAppClient, pair_delay
from clinic.whatsapp.errors import GraphError
from clinic.whatsapp.outbound import template_message, to_graph_messages
from clinic.whatsapp.types import WINDOW_REPLY_PAYLOAD, GraphConfig, Sender, StatusUpdate

NOW = datetime(2027, 3, 1, 9, 0, tzinfo=timezone.utc)
SECRET_TEXT = "Referto di Mario Rossi: emocromo nella norma"
CONFIG = GraphConfig(
    api_base_url="http://127.0.0.1:9",
    api_version="v23.0",
    phone_number_id="100000000000001",
    access_token="t",
    app_secret="s",
    verify_token="v",
    window_template="clinic_new_message",
)


class Clock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_client(db, clock, **options) -> WhatsAppClient:
    return WhatsAppClient(db, CONFIG, default_language="it", clock=clock, **options)


def add_contact(db, *, wa_id="393331234567", user_id=None, last_inbound_at=None, language=None, name="Mario"):
    with db.transaction() as session:
        contact = Contact(wa_id=wa_id, user_id=user_id, last_inbound_at=last_inbound_at, language=language,
                          profile_name=name)
        session.add(contact)
        session.flush()
        return contact.id


def rows(db, contact_id=None) -> list[OutboundMessage]:
    with db.reading() as session:
        query = select(OutboundMessage).order_by(OutboundMessage.id)
        if contact_id is not None:
            query = query.where(OutboundMessage.contact_id == contact_id)
        return list(session.execute(query).scalars())


def texts(*bodies: str) -> list[dict]:
    return [b for text in bodies for b in to_graph_messages({"text": text})]


def status(wamid, name, at=NOW, code=None, opaque=None) -> StatusUpdate:
    return StatusUpdate(wamid=wamid, status=name, timestamp=at, recipient=Sender("393331234567", None),
                        error_code=code, error_title="Title" if code else None, biz_opaque_callback_data=opaque)


def accept(client: WhatsAppClient, row_id: int, wamid: str) -> None:
    """What a successful send records: claim the row, then Meta's answer."""
    jobs = [job for job in client._claim(50) if job.id == row_id]
    assert jobs, f"row {row_id} was not claimable"
    client._accepted(jobs[0], wamid)


# --- enqueue and the window ------------------------------------------------------------------------


def test_enqueue_in_the_window_queues_in_order(any_db, clock):
    contact = add_contact(any_db, last_inbound_at=NOW - timedelta(hours=23, minutes=59))
    client = make_client(any_db, clock)
    ids = client.enqueue(contact, texts("uno", "due", "tre"), source="bot")
    stored = rows(any_db)
    assert [r.id for r in stored] == ids == sorted(ids)
    assert [(r.status, r.kind, r.body["text"]["body"], r.source) for r in stored] == [
        (OutboundStatus.queued, "text", "uno", "bot"),
        (OutboundStatus.queued, "text", "due", "bot"),
        (OutboundStatus.queued, "text", "tre", "bot"),
    ]
    assert [r.biz_opaque_callback_data for r in stored] == [f"outbox:{i}" for i in ids]


def test_caller_opaque_is_kept_and_bounded(db, clock):
    contact = add_contact(db, last_inbound_at=NOW)
    client = make_client(db, clock)
    (row_id,) = client.enqueue(contact, texts("x"), source="outreach:reminder", opaque="appointment:7")
    assert rows(db)[0].biz_opaque_callback_data == "appointment:7"
    with pytest.raises(ValueError):
        client.enqueue(contact, texts("x"), source="bot", opaque="x" * 513)
    with pytest.raises(ValueError):
        client.enqueue(contact, [{"text": {"body": "no type"}}], source="bot")
    assert [r.id for r in rows(db)] == [row_id]


@pytest.mark.parametrize("last_inbound", [None, NOW - timedelta(hours=24), NOW - timedelta(days=30)])
def test_closed_window_holds_free_form_and_queues_one_template(any_db, clock, last_inbound):
    contact = add_contact(any_db, last_inbound_at=last_inbound, language="en", name="Mario  Rossi")
    client = make_client(any_db, clock)
    first = client.enqueue(contact, texts("uno", "due"), source="bot")
    second = client.enqueue(contact, texts("tre"), source="inbox:rossi")
    stored = rows(any_db)
    held = [r for r in stored if r.status is OutboundStatus.held]
    templates = [r for r in stored if r.source == WINDOW_SOURCE]
    assert [r.id for r in held] == first + second
    assert len(templates) == 1  # once per closed window, not once per held message
    assert templates[0].status is OutboundStatus.queued
    assert templates[0].body == template_message("clinic_new_message", "en", body_parameters=["Mario Rossi"],
                                                 quick_replies=[WINDOW_REPLY_PAYLOAD])


def test_window_template_language_falls_back_to_the_default(db, clock):
    contact = add_contact(db, last_inbound_at=None, name=None)
    make_client(db, clock).enqueue(contact, texts("x"), source="bot")
    (template,) = [r for r in rows(db) if r.kind == "template"]
    assert template.body["template"]["language"] == {"code": "it"}
    assert template.body["template"]["components"][0]["parameters"] == [{"type": "text", "text": "👋"}]


def test_templates_go_out_even_when_the_window_is_closed(db, clock):
    contact = add_contact(db, last_inbound_at=None)
    client = make_client(db, clock)
    client.enqueue(contact, [template_message("appointment_reminder", "it", ["a", "b", "c"])], source="outreach")
    assert [(r.status, r.source) for r in rows(db)] == [(OutboundStatus.queued, "outreach")]


def test_contact_wrote_releases_held_messages_in_order(any_db, clock):
    contact = add_contact(any_db, last_inbound_at=None)
    client = make_client(any_db, clock)
    held = client.enqueue(contact, texts("uno", "due", "tre"), source="bot")
    clock.advance(minutes=5)
    client.contact_wrote(contact, clock.now)
    stored = {r.id: r for r in rows(any_db)}
    assert [stored[i].status for i in held] == [OutboundStatus.queued] * 3
    # the window template had not gone out yet: the patient is here, so it never will
    (template,) = [r for r in stored.values() if r.source == WINDOW_SOURCE]
    assert template.status is OutboundStatus.failed
    # claims follow the original order
    client._accepted(client._claim(10)[0], "wamid.1")
    assert [j.id for j in client._claim(10)] == [held[1]]


def test_last_inbound_never_moves_backwards(db, clock):
    contact = add_contact(db, last_inbound_at=NOW)
    client = make_client(db, clock)
    client.contact_wrote(contact, NOW - timedelta(hours=1))
    with db.reading() as session:
        assert session.get(Contact, contact).last_inbound_at == NOW


def test_a_stale_inbound_does_not_release(db, clock):
    contact = add_contact(db, last_inbound_at=None)
    client = make_client(db, clock)
    client.enqueue(contact, texts("x"), source="bot")
    client.contact_wrote(contact, NOW - timedelta(hours=30))  # an old webhook replayed
    assert rows(db)[0].status is OutboundStatus.held


def test_one_template_per_closed_window_not_per_lifetime(db, clock):
    contact = add_contact(db, last_inbound_at=None)
    client = make_client(db, clock)
    client.enqueue(contact, texts("first window"), source="bot")
    accept(client, [r.id for r in rows(db) if r.kind == "template"][0], "wamid.t1")
    clock.advance(hours=1)
    client.contact_wrote(contact, clock.now)
    clock.advance(hours=30)  # the window closes again
    client.enqueue(contact, texts("second window"), source="bot")
    assert len([r for r in rows(db) if r.source == WINDOW_SOURCE]) == 2


def test_a_message_whose_window_closed_while_queued_is_held_at_claim(db, clock):
    contact = add_contact(db, last_inbound_at=NOW - timedelta(hours=23))
    client = make_client(db, clock)
    (row_id,) = client.enqueue(contact, texts("late"), source="bot")
    clock.advance(hours=2)
    jobs = client._claim(10)
    assert [j.kind for j in jobs] == []  # the template is created after this claim
    jobs = client._claim(10)
    assert [j.kind for j in jobs] == ["template"]
    assert {r.id: r.status for r in rows(db)}[row_id] is OutboundStatus.held


# --- status callbacks --------------------------------------------------------------------------------


def sent_row(db, clock, client=None):
    contact = add_contact(db, last_inbound_at=NOW)
    client = client or make_client(db, clock)
    (row_id,) = client.enqueue(contact, texts(SECRET_TEXT), source="bot")
    accept(client, row_id, "wamid.A")
    return client, row_id


def test_statuses_only_move_forward(any_db, clock):
    client, row_id = sent_row(any_db, clock)
    client.apply_status(status("wamid.A", "read", NOW + timedelta(seconds=30)))
    client.apply_status(status("wamid.A", "delivered", NOW + timedelta(seconds=10)))  # late
    client.apply_status(status("wamid.A", "sent", NOW + timedelta(seconds=5)))  # later still
    (row,) = rows(any_db)
    assert row.status is OutboundStatus.read
    assert row.read_at == NOW + timedelta(seconds=30)
    assert row.delivered_at == NOW + timedelta(seconds=10)


def test_read_without_delivered_implies_delivered(db, clock):
    client, _ = sent_row(db, clock)
    client.apply_status(status("wamid.A", "read", NOW + timedelta(seconds=9)))
    (row,) = rows(db)
    assert (row.status, row.delivered_at) == (OutboundStatus.read, NOW + timedelta(seconds=9))


def test_failed_records_code_and_title_and_is_final(db, clock):
    client, _ = sent_row(db, clock)
    client.apply_status(status("wamid.A", "failed", code=131026))
    client.apply_status(status("wamid.A", "delivered"))
    (row,) = rows(db)
    assert (row.status, row.error_code, row.error_title) == (OutboundStatus.failed, 131026, "Title")


def test_failed_after_delivered_is_ignored(db, clock):
    client, _ = sent_row(db, clock)
    client.apply_status(status("wamid.A", "delivered"))
    client.apply_status(status("wamid.A", "failed", code=131000))
    assert rows(db)[0].status is OutboundStatus.delivered


def test_unknown_wamid_is_ignored_with_an_id_only_log(db, clock, caplog):
    client, _ = sent_row(db, clock)
    with caplog.at_level(logging.INFO, logger="clinic.whatsapp.client"):
        client.apply_status(status("wamid.UNKNOWN", "delivered"))
    assert rows(db)[0].status is OutboundStatus.sent
    assert "wamid.UNKNOWN" in caplog.text


def test_a_callback_that_overtakes_the_http_answer_finds_its_row_by_opaque(any_db, clock):
    contact = add_contact(any_db, last_inbound_at=NOW)
    client = make_client(any_db, clock)
    (row_id,) = client.enqueue(contact, texts("x"), source="bot")
    client.apply_status(status("wamid.EARLY", "delivered", opaque=f"outbox:{row_id}"))  # not being sent: ignored
    assert rows(any_db)[0].wamid is None
    (job,) = client._claim(10)
    client.apply_status(status("wamid.FAST", "delivered", opaque=f"outbox:{row_id}"))
    client._accepted(job, "wamid.FAST")
    (row,) = rows(any_db)
    assert (row.wamid, row.status) == ("wamid.FAST", OutboundStatus.delivered)


def test_async_131047_holds_the_message_and_the_rest_and_queues_the_template(any_db, clock):
    contact = add_contact(any_db, last_inbound_at=NOW)
    client = make_client(any_db, clock)
    first, second, third = client.enqueue(contact, texts("uno", "due", "tre"), source="bot")
    accept(client, first, "wamid.1")
    client.apply_status(status("wamid.1", "failed", code=131047))
    stored = {r.id: r for r in rows(any_db)}
    assert [stored[i].status for i in (first, second, third)] == [OutboundStatus.held] * 3
    assert stored[first].wamid is None and stored[first].error_code == 131047
    (template,) = [r for r in stored.values() if r.source == WINDOW_SOURCE]
    assert template.status is OutboundStatus.queued
    # new free-form messages wait behind the held ones rather than meet another 131047
    (fourth,) = client.enqueue(contact, texts("quattro"), source="bot")
    assert {r.id: r.status for r in rows(any_db)}[fourth] is OutboundStatus.held
    assert len([r for r in rows(any_db) if r.source == WINDOW_SOURCE]) == 1
    clock.advance(minutes=1)
    client.contact_wrote(contact, clock.now)
    assert [j.id for j in client._claim(10)] == [first]


def test_logs_hold_ids_and_codes_never_text_or_numbers(db, clock, caplog):
    with caplog.at_level(logging.DEBUG):
        client, _ = sent_row(db, clock)
        client.apply_status(status("wamid.A", "failed", code=131047))
        client.enqueue(rows(db)[0].contact_id, texts(SECRET_TEXT), source="bot")
    assert "Mario" not in caplog.text and "emocromo" not in caplog.text and "393331234567" not in caplog.text


# --- claiming, order, pacing -------------------------------------------------------------------------


def test_claims_one_message_per_contact_at_a_time(any_db, clock):
    a = add_contact(any_db, wa_id="391", last_inbound_at=NOW)
    b = add_contact(any_db, wa_id="392", last_inbound_at=NOW)
    client = make_client(any_db, clock)
    a_ids = client.enqueue(a, texts("a1", "a2"), source="bot")
    b_ids = client.enqueue(b, texts("b1"), source="bot")
    jobs = client._claim(10)
    assert sorted(j.id for j in jobs) == [a_ids[0], b_ids[0]]
    assert client._claim(10) == []  # a2 waits until a1 is accepted
    client._accepted(next(j for j in jobs if j.id == a_ids[0]), "wamid.a1")
    assert [j.id for j in client._claim(10)] == [a_ids[1]]


def test_recipient_is_the_phone_else_the_business_scoped_user_id(db, clock):
    phone = add_contact(db, wa_id="393330000001", last_inbound_at=NOW)
    bsuid = add_contact(db, wa_id=None, user_id="IT.1234567890", last_inbound_at=NOW)
    client = make_client(db, clock)
    client.enqueue(phone, texts("x"), source="bot")
    client.enqueue(bsuid, texts("y"), source="bot")
    payloads = {job.contact_id: client._addressed(job) for job in client._claim(10)}
    assert payloads[phone]["to"] == "393330000001" and "recipient" not in payloads[phone]
    assert payloads[bsuid]["recipient"] == "IT.1234567890" and "to" not in payloads[bsuid]
    assert payloads[phone]["biz_opaque_callback_data"].startswith("outbox:")
    assert payloads[phone]["messaging_product"] == "whatsapp"


def test_concurrent_claimers_never_take_the_same_row(any_db, clock):
    contacts = [add_contact(any_db, wa_id=f"39{i}", last_inbound_at=NOW) for i in range(12)]
    client = make_client(any_db, clock)
    for contact in contacts:
        client.enqueue(contact, texts("1", "2", "3"), source="bot")
    claimers = [make_client(any_db, clock) for _ in range(6)]
    claimed: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(claimers))

    def work(c: WhatsAppClient) -> None:
        barrier.wait()
        for _ in range(3):
            jobs = c._claim(4)
            with lock:
                claimed.extend(j.id for j in jobs)

    threads = [threading.Thread(target=work, args=(c,)) for c in claimers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(claimed) == len(set(claimed)) == len(contacts)  # each contact's head, once
    sending = [r for r in rows(any_db) if r.status is OutboundStatus.sending]
    assert len({r.contact_id for r in sending}) == len(sending) == len(contacts)


def test_a_row_stuck_in_sending_is_taken_again_after_its_lease(db, clock):
    contact = add_contact(db, last_inbound_at=NOW)
    client = make_client(db, clock, sending_lease=60)
    (row_id,) = client.enqueue(contact, texts("x"), source="bot")
    assert [j.id for j in client._claim(10)] == [row_id]  # then the process dies
    clock.advance(seconds=59)
    assert client._claim(10) == []
    clock.advance(seconds=2)
    (job,) = client._claim(10)
    assert (job.id, job.attempts) == (row_id, 2)


def test_a_lease_expiring_on_the_last_attempt_fails_the_row(db, clock):
    contact = add_contact(db, last_inbound_at=NOW)
    client = make_client(db, clock, sending_lease=1, request_timeout=1, max_attempts=2)
    assert client.sending_lease == 7  # never shorter than an upload plus a send
    client.enqueue(contact, texts("x"), source="bot")
    client._claim(10)
    clock.advance(seconds=8)
    client._claim(10)
    clock.advance(seconds=8)
    assert client._claim(10) == []
    assert rows(db)[0].status is OutboundStatus.failed


def test_pair_pacing_defers_a_flood_to_one_contact(db, clock):
    contact = add_contact(db, last_inbound_at=NOW)
    client = make_client(db, clock, pair_burst=3, pair_interval=6)
    ids = client.enqueue(contact, texts(*"abcdef"), source="bot")
    for wamid in ("w1", "w2", "w3"):  # a burst of three goes out at once
        (job,) = client._claim(10)
        client._accepted(job, wamid)
    assert client._claim(10) == []
    row = {r.id: r for r in rows(db)}[ids[3]]
    assert row.next_attempt_at == NOW + timedelta(seconds=6)
    clock.advance(seconds=6)
    (job,) = client._claim(10)
    assert job.id == ids[3]


@pytest.mark.parametrize(
    ("sent_ago", "burst", "expected"),
    [
        ([], 3, 0),
        ([0], 3, 0),
        ([0, 0], 3, 0),
        ([0, 0, 0], 3, 6),  # burst used up: one interval
        ([0, -6, -6, -6], 3, 6),  # a burst, then one paced send: the next waits a full interval
        ([-6, -6, -6], 3, 0),  # one token back after 6 s
        ([-60] * 10, 3, 0),  # long ago
        ([0] * 10, 10, 6),
    ],
)
def test_pair_delay_is_a_token_bucket(sent_ago, burst, expected):
    now = NOW
    recent = [now + timedelta(seconds=s) for s in sent_ago]
    # Every send in `sent_ago` was itself allowed, so the delay is only about the next one.
    assert pair_delay(recent, now, burst, 6.0) == pytest.approx(expected)


def test_the_loop_sleeps_until_a_contacts_next_message_is_due(db, clock):
    """A due message behind one that is backing off must not make the delivery loop spin."""
    contact = add_contact(db, last_inbound_at=NOW)
    client = make_client(db, clock, poll_interval=30, retry_base_delay=600, retry_max_delay=600)
    first, _ = client.enqueue(contact, texts("uno", "due"), source="bot")
    (job,) = client._claim(10)
    client._failed(job, GraphError(503, 131016, "Service unavailable"))
    assert rows(db)[0].status is OutboundStatus.queued
    assert client._next_due_in() == 30  # the backoff (≥ 300 s) is beyond the poll interval
    clock.advance(seconds=601)
    assert client._next_due_in() == pytest.approx(0.02)


def test_one_pass_looks_past_a_batch_of_paced_rows(db, clock):
    """`deliver_due` keeps claiming while due rows remain, even when a whole batch was only paced."""
    client = make_client(db, clock, concurrency=2, pair_burst=1, pair_interval=60)
    paced = [add_contact(db, wa_id=f"3900{i}", last_inbound_at=NOW) for i in range(2)]
    for contact in paced:
        (row_id,) = client.enqueue(contact, texts("x"), source="bot")
        with db.transaction() as session:  # each was sent to a moment ago: its next message must wait
            session.get(OutboundMessage, row_id).sent_at = NOW
            session.get(OutboundMessage, row_id).status = OutboundStatus.sent
        client.enqueue(contact, texts("y"), source="bot")
    other = add_contact(db, wa_id="39009", last_inbound_at=NOW)
    client.enqueue(other, texts("z"), source="bot")
    jobs, examined = client._claim_batch(2)
    assert (jobs, examined) == ([], 2)  # both paced: the pass must not stop here
    jobs, examined = client._claim_batch(2)
    assert [j.contact_id for j in jobs] == [other]


def test_a_retried_message_keeps_its_place_ahead_of_the_backlog(any_db, clock):
    """A retry is claimed once its backoff is over, before the rows queued while it waited."""
    client = make_client(any_db, clock, retry_base_delay=4, retry_max_delay=4)  # retried in 2-4 s
    contacts = [add_contact(any_db, wa_id=f"3933300000{i}", last_inbound_at=NOW) for i in range(4)]
    (first,) = client.enqueue(contacts[0], texts("a"), source="bot")
    (job,) = client._claim(1)
    asyncio.run(client._fail(job, GraphError(503, 131016, "Service unavailable")))
    assert rows(any_db)[0].next_attempt_at > NOW + timedelta(seconds=1)
    clock.advance(seconds=1)
    backlog = [client.enqueue(contact, texts("b"), source="bot")[0] for contact in contacts[1:]]
    clock.advance(seconds=5)
    assert [j.id for j in client._claim(1)] == [first]
    assert [j.id for j in client._claim(10)] == backlog
