"""Waitlist backfill against real databases (SQLite and PostgreSQL): a freed slot is offered in
joining order a batch at a time, expires to the next in line, goes to the first who accepts, and
the others are told it has gone; only with consent, never in quiet hours."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date, time, timedelta

from sqlalchemy import select

from clinic import audit, consent, scheduling, waitlist
from clinic.db import Database
from clinic.models import Appointment, AppointmentStatus, OfferStatus, OutboundMessage, WaitlistOffer
from clinic.outreach import backfill
from clinic.outreach.backfill import Rules, run_pass
from tests.outreach.conftest import BOOKED_AT, EMILY, GIOVANNI, ROME, local

CHIARA, ROSA = 2, 5
FRIDAY = date(2027, 3, 5)
RULES = Rules(batch_size=2, offer_for=timedelta(hours=2), quiet=(time(21), time(8)), zone=ROME)
NOW = local(date(2027, 3, 2), time(10))  # Tuesday morning, before Friday's visits


def a_full_friday(db) -> list[scheduling.AppointmentView]:
    """Every cardiology slot of Friday 5 March booked by Rosa: nothing free until someone cancels."""
    booked = []
    query = scheduling.SlotQuery(*scheduling.day_window(FRIDAY), specialty="cardiology")
    for slot in scheduling.free_slots(db, query, now=BOOKED_AT, limit=50):
        booked.append(scheduling.book(db, patient_id=ROSA, slot_id=slot.id, actor="staff:test",
                                      specialty="cardiology", now=BOOKED_AT))
    return booked


def join(db, patient_id: int) -> waitlist.WaitlistView:
    return waitlist.join(db, patient_id=patient_id, specialty="cardiology", wanted_from=FRIDAY, wanted_until=FRIDAY)


def free_one(db, visits) -> scheduling.AppointmentView:
    """Cancel the day's last visit (12:30: an offer made three hours before is outside quiet hours)."""
    return scheduling.cancel(db, appointment_id=visits[-1].id, reason="test", actor="staff:test", now=BOOKED_AT)


def offers(db) -> list[WaitlistOffer]:
    with db.reading() as session:
        return session.scalars(select(WaitlistOffer).order_by(WaitlistOffer.id)).all()


def offered_to(db) -> list[tuple[int, OfferStatus]]:
    """(patient id, status) of every offer, oldest first."""
    with db.reading() as session:
        rows = session.scalars(select(WaitlistOffer).order_by(WaitlistOffer.id))
        return [(o.entry.patient_id, o.status) for o in rows]


def templates(db) -> list[tuple[int, str, list[str]]]:
    """(contact id, template name, quick-reply payloads) of the waitlist's outbox rows."""
    with db.reading() as session:
        rows = session.scalars(select(OutboundMessage).where(OutboundMessage.source == backfill.SOURCE)
                               .order_by(OutboundMessage.id)).all()
    return [(r.contact_id, r.body["template"]["name"],
             [c["parameters"][0]["payload"] for c in r.body["template"].get("components", []) if c["type"] == "button"])
            for r in rows]


def contact_of(db, patient_id: int) -> int:
    from clinic.outreach.reminders import recipient

    with db.reading() as session:
        return recipient(session, patient_id).id


def test_a_freed_slot_is_offered_in_joining_order_a_batch_at_a_time_then_to_the_next_in_line(any_demo_db, client):
    visits = a_full_friday(any_demo_db)
    for patient in (EMILY, GIOVANNI, CHIARA):
        join(any_demo_db, patient)
    assert run_pass(any_demo_db, client, NOW, RULES).offered == 0  # nothing free yet
    freed = free_one(any_demo_db, visits)

    assert run_pass(any_demo_db, client, NOW, RULES).offered == 2
    assert offered_to(any_demo_db) == [(EMILY, OfferStatus.offered), (GIOVANNI, OfferStatus.offered)]
    first, second = offers(any_demo_db)
    assert first.slot_id == second.slot_id == freed.slot_id
    assert templates(any_demo_db) == [
        (contact_of(any_demo_db, EMILY), "waitlist_offer", backfill.offer_payloads(first.id)),
        (contact_of(any_demo_db, GIOVANNI), "waitlist_offer", backfill.offer_payloads(second.id))]
    assert run_pass(any_demo_db, client, NOW + timedelta(minutes=30), RULES).offered == 0  # still held

    later = NOW + timedelta(hours=2)
    result = run_pass(any_demo_db, client, later, RULES)
    assert (result.expired, result.offered) == (2, 1)
    assert offered_to(any_demo_db) == [(EMILY, OfferStatus.expired), (GIOVANNI, OfferStatus.expired),
                                       (CHIARA, OfferStatus.offered)]
    assert backfill.accept(any_demo_db, offer_id=first.id, contact_id=contact_of(any_demo_db, EMILY),
                           actor="contact:test", now=later).outcome == "expired"


def test_the_first_to_accept_gets_the_slot_and_the_other_is_told_it_has_gone(any_demo_db, client):
    free_one(any_demo_db, a_full_friday(any_demo_db))
    join(any_demo_db, GIOVANNI)
    join(any_demo_db, EMILY)
    run_pass(any_demo_db, client, NOW, RULES)
    giovannis, emilys = offers(any_demo_db)
    giovanni, emily = contact_of(any_demo_db, GIOVANNI), contact_of(any_demo_db, EMILY)

    answer = backfill.accept(any_demo_db, offer_id=giovannis.id, contact_id=giovanni, actor="contact:test",
                             now=NOW + timedelta(minutes=5))
    assert answer.outcome == "booked"
    assert (answer.appointment.patient_id, answer.appointment.slot_id) == (GIOVANNI, giovannis.slot_id)
    assert waitlist.entries(any_demo_db, GIOVANNI) == []  # served
    assert backfill.accept(any_demo_db, offer_id=giovannis.id, contact_id=emily, actor="contact:test",
                           now=NOW).outcome == "unknown"  # not Emily's offer

    result = run_pass(any_demo_db, client, NOW + timedelta(minutes=6), RULES)
    assert result.gone == 1
    assert offered_to(any_demo_db) == [(GIOVANNI, OfferStatus.accepted), (EMILY, OfferStatus.gone)]
    assert templates(any_demo_db)[-1] == (emily, "waitlist_offer_gone", [])
    assert backfill.accept(any_demo_db, offer_id=emilys.id, contact_id=emily, actor="contact:test",
                           now=NOW + timedelta(minutes=7)).outcome == "gone"
    assert len(waitlist.entries(any_demo_db, EMILY)) == 1  # still waiting for another slot
    with any_demo_db.reading() as session:
        kinds = [e.kind for e in session.scalars(select(audit.AuditEntry).order_by(audit.AuditEntry.seq))]
    assert [k for k in kinds if k.startswith("waitlist.")] == [
        "waitlist.offered", "waitlist.offered", "waitlist.accepted", "waitlist.gone"]
    assert audit.verify(any_demo_db).ok


def test_two_acceptances_at_once_give_one_booking(any_demo_db, client):
    free_one(any_demo_db, a_full_friday(any_demo_db))
    join(any_demo_db, GIOVANNI)
    join(any_demo_db, EMILY)
    run_pass(any_demo_db, client, NOW, RULES)
    pairs = [(o.id, o.contact_id) for o in offers(any_demo_db)]
    barrier = threading.Barrier(len(pairs))

    def accept(pair):
        own = Database(any_demo_db.url)  # its own engine and connections, like another action server
        try:
            barrier.wait()
            return backfill.accept(own, offer_id=pair[0], contact_id=pair[1], actor="contact:race",
                                   now=NOW + timedelta(minutes=1)).outcome
        finally:
            own.dispose()

    with ThreadPoolExecutor(len(pairs)) as pool:
        outcomes = sorted(pool.map(accept, pairs))
    assert outcomes == ["booked", "gone"]
    slot_id = offers(any_demo_db)[0].slot_id
    with any_demo_db.reading() as session:
        holders = session.scalars(select(Appointment).where(Appointment.slot_id == slot_id,
                                                            Appointment.status != AppointmentStatus.cancelled)).all()
    assert len(holders) == 1 and holders[0].patient_id in (GIOVANNI, EMILY)
    assert audit.verify(any_demo_db).ok


def test_a_declined_offer_goes_to_the_next_in_line_at_once(any_demo_db, client):
    free_one(any_demo_db, a_full_friday(any_demo_db))
    for patient in (GIOVANNI, EMILY, CHIARA):
        join(any_demo_db, patient)
    run_pass(any_demo_db, client, NOW, RULES)
    giovannis = offers(any_demo_db)[0]
    assert backfill.decline(any_demo_db, offer_id=giovannis.id, contact_id=contact_of(any_demo_db, GIOVANNI),
                            actor="contact:test", now=NOW).outcome == "declined"
    assert run_pass(any_demo_db, client, NOW + timedelta(minutes=1), RULES).offered == 1
    assert offered_to(any_demo_db) == [(GIOVANNI, OfferStatus.declined), (EMILY, OfferStatus.offered),
                                       (CHIARA, OfferStatus.offered)]
    assert len(waitlist.entries(any_demo_db, GIOVANNI)) == 1


def test_no_offer_without_the_appointments_consent_nor_in_quiet_hours(any_demo_db, client):
    free_one(any_demo_db, a_full_friday(any_demo_db))
    join(any_demo_db, GIOVANNI)
    join(any_demo_db, EMILY)
    consent.decide(any_demo_db, contact_of(any_demo_db, GIOVANNI), ["results", "followups"], how="test")
    night = local(date(2027, 3, 2), time(22, 30))
    assert run_pass(any_demo_db, client, night, RULES).offered == 0
    assert offers(any_demo_db) == []
    morning = local(date(2027, 3, 3), time(8))
    result = run_pass(any_demo_db, client, morning, RULES)
    assert (result.offered, result.passed_by) == (1, 1)
    assert offered_to(any_demo_db) == [(EMILY, OfferStatus.offered)]


def test_a_slot_is_never_offered_past_its_last_bookable_moment(any_demo_db, client):
    visits = a_full_friday(any_demo_db)
    free_one(any_demo_db, visits)
    join(any_demo_db, GIOVANNI)
    freed_start = visits[-1].start_at
    near = freed_start - timedelta(hours=3)  # lead time 2 h: offer holds 1 h, not 2
    run_pass(any_demo_db, client, near, RULES)
    (offer,) = offers(any_demo_db)
    assert offer.expires_at == scheduling.latest_booking(freed_start)


def test_workers_racing_make_each_offer_once_and_keep_the_batch_size(any_demo_db):
    from clinic.whatsapp.client import WhatsAppClient
    from tests.outreach.conftest import OFFLINE

    visits = a_full_friday(any_demo_db)
    for visit in visits[-3:]:
        scheduling.cancel(any_demo_db, appointment_id=visit.id, reason="test", actor="staff:test", now=BOOKED_AT)
    for patient in (GIOVANNI, CHIARA, EMILY, 3):
        join(any_demo_db, patient)
    barrier = threading.Barrier(4)

    def worker(_) -> int:
        own = Database(any_demo_db.url)  # its own engine and connections, like another process
        try:
            barrier.wait()
            return run_pass(own, WhatsAppClient(own, OFFLINE), NOW, RULES).offered
        finally:
            own.dispose()

    with ThreadPoolExecutor(4) as pool:
        made = sum(pool.map(worker, range(4)))
    assert made == len(offers(any_demo_db))
    # a worker that found a slot filled meanwhile leaves that entry to the next pass
    run_pass(any_demo_db, WhatsAppClient(any_demo_db, OFFLINE), NOW + timedelta(minutes=1), RULES)
    rows = offers(any_demo_db)
    assert sorted(r.entry_id for r in rows) == sorted({r.entry_id for r in rows}) and len(rows) == 4
    per_slot = {}
    for row in rows:
        per_slot[row.slot_id] = per_slot.get(row.slot_id, 0) + 1
    assert max(per_slot.values()) <= RULES.batch_size
    assert len(templates(any_demo_db)) == 4
    assert audit.verify(any_demo_db).ok


def test_after_stop_an_offer_that_has_gone_is_closed_without_a_message(any_demo_db, client):
    free_one(any_demo_db, a_full_friday(any_demo_db))
    join(any_demo_db, GIOVANNI)
    join(any_demo_db, EMILY)
    run_pass(any_demo_db, client, NOW, RULES)
    giovannis, _ = offers(any_demo_db)
    backfill.accept(any_demo_db, offer_id=giovannis.id, contact_id=contact_of(any_demo_db, GIOVANNI),
                    actor="contact:test", now=NOW)
    consent.opt_out(any_demo_db, contact_of(any_demo_db, EMILY), how="keyword:stop")
    assert run_pass(any_demo_db, client, NOW + timedelta(minutes=1), RULES).gone == 1
    assert offered_to(any_demo_db)[-1] == (EMILY, OfferStatus.gone)
    assert [name for _, name, _ in templates(any_demo_db)] == ["waitlist_offer", "waitlist_offer"]


def test_a_patient_who_booked_those_days_meanwhile_is_not_offered_another_visit(any_demo_db, client):
    visits = a_full_friday(any_demo_db)
    join(any_demo_db, GIOVANNI)
    join(any_demo_db, EMILY)
    scheduling.cancel(any_demo_db, appointment_id=visits[0].id, reason="test", actor="staff:test", now=BOOKED_AT)
    scheduling.book(any_demo_db, patient_id=GIOVANNI, slot_id=visits[0].slot_id, actor="contact:test",
                    specialty="cardiology", now=BOOKED_AT)  # Giovanni booked it himself
    free_one(any_demo_db, visits)
    run_pass(any_demo_db, client, NOW, RULES)
    assert offered_to(any_demo_db) == [(EMILY, OfferStatus.offered)]


def test_an_offer_made_in_the_evening_holds_through_the_night(any_demo_db, client):
    free_one(any_demo_db, a_full_friday(any_demo_db))
    join(any_demo_db, GIOVANNI)
    run_pass(any_demo_db, client, local(date(2027, 3, 2), time(20, 30)), RULES)
    (offer,) = offers(any_demo_db)
    assert offer.expires_at == local(date(2027, 3, 3), time(9, 30))  # half an hour before 21:00, 1.5 h after 08:00
