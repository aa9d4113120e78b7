"""Ticket state machine, one open ticket per contact, queue order, summary and transcript."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from clinic import handoff
from clinic.models import InboundMessage, OutboundMessage, OutboundStatus, StaffEvent, TicketStatus
from tests.handoff.conftest import NOW, add_contact, add_staff


def test_a_ticket_goes_waiting_claimed_resolved_with_its_times(any_db, contact_id):
    nurse = add_staff(any_db)
    ticket = handoff.open_ticket(any_db, contact_id, "medical_question", language="it",
                                 summary={"intent": "ask_medical_question", "slots": {"symptom": "fever"}}, now=NOW)
    assert ticket.status is TicketStatus.waiting and ticket.created_at == NOW

    claimed = handoff.claim(any_db, ticket.id, nurse, now=NOW + timedelta(minutes=2))
    assert (claimed.status, claimed.claimed_by, claimed.claimed_at) == (
        TicketStatus.claimed, "rossi", NOW + timedelta(minutes=2))
    handoff.replied(any_db, ticket.id, nurse, now=NOW + timedelta(minutes=3))
    handoff.replied(any_db, ticket.id, nurse, now=NOW + timedelta(minutes=4))
    assert handoff.get(any_db, ticket.id).first_reply_at == NOW + timedelta(minutes=3)

    done = handoff.resolve(any_db, ticket.id, nurse, now=NOW + timedelta(minutes=5))
    assert (done.status, done.resolved_at) == (TicketStatus.resolved, NOW + timedelta(minutes=5))
    with pytest.raises(handoff.TicketClosed):
        handoff.claim(any_db, ticket.id, nurse)
    with any_db.reading() as s:
        actions = s.scalars(select(StaffEvent.action).order_by(StaffEvent.id)).all()
    assert actions == ["claim", "reply", "reply", "resolve"]


def test_a_second_request_updates_the_open_ticket_and_urgent_wins(any_db, contact_id):
    first = handoff.open_ticket(any_db, contact_id, "request_human", now=NOW)
    second = handoff.open_ticket(any_db, contact_id, "emergency", summary={"intent": "report_emergency"})
    third = handoff.open_ticket(any_db, contact_id, "fallback", priority="normal")
    assert first.id == second.id == third.id
    assert (third.priority, third.reason, third.summary["intent"]) == ("urgent", "emergency", "report_emergency")


def test_after_resolving_a_new_request_opens_a_new_ticket(any_db, contact_id):
    nurse = add_staff(any_db)
    first = handoff.open_ticket(any_db, contact_id, "request_human")
    handoff.claim(any_db, first.id, nurse)
    handoff.resolve(any_db, first.id, nurse)
    assert handoff.open_ticket(any_db, contact_id, "request_human").id != first.id


def test_release_reassign_and_holder_rules(any_db, contact_id):
    rossi, bianchi = add_staff(any_db, "rossi"), add_staff(any_db, "bianchi")
    ticket = handoff.open_ticket(any_db, contact_id, "request_human")
    handoff.claim(any_db, ticket.id, rossi)
    with pytest.raises(handoff.AlreadyClaimed, match="already claimed by rossi"):
        handoff.claim(any_db, ticket.id, bianchi)
    with pytest.raises(handoff.NotHolder):
        handoff.resolve(any_db, ticket.id, bianchi)
    assert handoff.claim(any_db, ticket.id, rossi).claimed_by == "rossi"  # claiming again: no-op

    back = handoff.release(any_db, ticket.id, rossi)
    assert (back.status, back.claimed_by_id) == (TicketStatus.waiting, None)
    assert handoff.claim(any_db, ticket.id, bianchi).claimed_by == "bianchi"
    moved = handoff.reassign(any_db, ticket.id, rossi, by_staff_id=bianchi)
    assert (moved.claimed_by, moved.status) == ("rossi", TicketStatus.claimed)


def test_bad_reason_and_unknown_ticket(any_db, contact_id):
    with pytest.raises(ValueError):
        handoff.open_ticket(any_db, contact_id, "boredom")
    with pytest.raises(handoff.TicketNotFound):
        handoff.claim(any_db, 999, add_staff(any_db))


def test_queue_is_urgent_first_then_longest_waiting_with_window_and_sla(any_db):
    old = add_contact(any_db, "391", "Old", last_inbound_at=NOW - timedelta(hours=23), patient=False)
    new = add_contact(any_db, "392", "New", last_inbound_at=NOW - timedelta(hours=30), patient=False)
    urgent = add_contact(any_db, "393", "Urgent", last_inbound_at=None, patient=False)
    handoff.open_ticket(any_db, old, "request_human", now=NOW - timedelta(minutes=30))
    handoff.open_ticket(any_db, new, "fallback", now=NOW - timedelta(minutes=1))
    handoff.open_ticket(any_db, urgent, "emergency", now=NOW)

    items = handoff.queue(any_db, now=NOW, sla_minutes=10)
    assert [i.contact_name for i in items] == ["Urgent", "Old", "New"]
    assert [i.window_seconds_left for i in items] == [0, 3600, 0]
    assert [i.sla_breached for i in items] == [False, True, False]


def test_summary_says_who_writes_for_whom_and_what_the_bot_understood(any_db, contact_id):
    ticket = handoff.open_ticket(any_db, contact_id, "medical_question",
                                 summary={"intent": "ask_medical_question", "slots": {"symptom": "rash"}})
    got = handoff.summary(any_db, ticket.id, now=NOW)
    assert got.contact_name == "Maria"
    assert [(p.name, p.age, p.relationship) for p in got.patients] == [("Luca Verdi", 7, "parent")]
    assert (got.intent, got.slots, got.upcoming) == ("ask_medical_question", {"symptom": "rash"}, [])


def test_notes_are_kept_and_never_in_the_transcript(any_db, contact_id):
    nurse = add_staff(any_db)
    ticket = handoff.open_ticket(any_db, contact_id, "request_human")
    handoff.add_note(any_db, ticket.id, nurse, "called the GP")
    assert [(n["by"], n["text"]) for n in handoff.notes(any_db, ticket.id)] == [("rossi", "called the GP")]
    assert handoff.transcript(any_db, contact_id) == []


def test_transcript_is_both_ways_in_time_order_with_status_and_error(any_db, contact_id):
    with any_db.transaction() as s:
        s.add(InboundMessage(wamid="w1", contact_id=contact_id, phone_number_id="1", type="text",
                             payload={"text": {"body": "hello"}}, sent_at=NOW, received_at=NOW))
        s.add(OutboundMessage(contact_id=contact_id, kind="text", body={"type": "text", "text": {"body": "hi"}},
                              source="inbox:rossi", status=OutboundStatus.failed, error_code=131026,
                              error_title="Message undeliverable", created_at=NOW + timedelta(seconds=5)))
        s.add(InboundMessage(wamid="w2", contact_id=contact_id, phone_number_id="1", type="image",
                             payload={"image": {"mime_type": "image/jpeg", "caption": "my rash"}}, media_id="m1",
                             media_mime="image/jpeg", sent_at=NOW, received_at=NOW + timedelta(seconds=9)))
    entries = handoff.transcript(any_db, contact_id)
    assert [(e.direction, e.text, e.status, e.error_code) for e in entries] == [
        ("in", "hello", None, None), ("out", "hi", "failed", 131026), ("in", "my rash", None, None)]
    assert entries[2].media["mime"] == "image/jpeg"


def test_staffed_hours():
    from datetime import datetime, timezone
    monday_10 = datetime(2027, 3, 1, 9, 0, tzinfo=timezone.utc)  # 10:00 in Rome
    sunday_10 = datetime(2027, 2, 28, 9, 0, tzinfo=timezone.utc)
    assert handoff.staffed(monday_10, "mon-fri 08:00-19:00")
    assert not handoff.staffed(sunday_10, "mon-fri 08:00-19:00,sat 08:00-12:00")
    with pytest.raises(ValueError):
        handoff.staffed(monday_10, "weekdays")
