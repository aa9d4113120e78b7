"""After the visit, against real databases (SQLite and PostgreSQL): the specialty's follow-up and
the satisfaction question for completed visits (answers stored), no-shows marked after the delay or
by staff and offered a new booking; each message once, only with consent, never in quiet hours."""

from __future__ import annotations

from datetime import date, time, timedelta

import pytest
from sqlalchemy import select, text

from clinic import audit, consent, satisfaction, scheduling
from clinic.models import AfterVisitKind, AfterVisitMessage, AppointmentStatus, OutboundMessage, ReminderStatus
from clinic.outreach import followups
from clinic.outreach.followups import Rules, run_pass
from tests.outreach.conftest import EMILY, GIOVANNI, ROME, book, local

RULES = Rules(followup_delay=timedelta(hours=2), survey_delay=timedelta(hours=4), grace=timedelta(hours=48),
              no_show_after=timedelta(hours=2), quiet=(time(21), time(8)), zone=ROME)
FRIDAY = date(2027, 3, 5)


def decisions(db) -> list[tuple[int, AfterVisitKind, ReminderStatus, str | None]]:
    with db.reading() as session:
        return [(r.appointment_id, r.kind, r.status, r.reason)
                for r in session.scalars(select(AfterVisitMessage).order_by(AfterVisitMessage.id))]


def sent(db) -> list[tuple[str, str, list[str]]]:
    """(template, language, quick-reply payloads) of the after-visit outbox rows, oldest first."""
    with db.reading() as session:
        rows = session.scalars(select(OutboundMessage).where(OutboundMessage.source == followups.SOURCE)
                               .order_by(OutboundMessage.id)).all()
    return [(r.body["template"]["name"], r.body["template"]["language"]["code"],
             [c["parameters"][0]["payload"] for c in r.body["template"].get("components", []) if c["type"] == "button"])
            for r in rows]


def completed(db, patient_id=GIOVANNI, specialty="cardiology", day=FRIDAY) -> scheduling.AppointmentView:
    visit = book(db, patient_id=patient_id, day=day, specialty=specialty)
    return scheduling.complete(db, appointment_id=visit.id, actor="staff:test", now=visit.end_at)


def contact_of(db, patient_id: int) -> int:
    from clinic.outreach.reminders import recipient

    with db.reading() as session:
        return recipient(session, patient_id).id


def test_a_completed_visit_gets_its_specialtys_follow_up_then_the_satisfaction_question_once(any_demo_db, client):
    visit = completed(any_demo_db)  # cardiology: next check-up
    done = visit.end_at
    assert run_pass(any_demo_db, client, done + timedelta(hours=1), RULES).sent == 0
    assert run_pass(any_demo_db, client, done + timedelta(hours=2), RULES).sent == 1
    assert run_pass(any_demo_db, client, done + timedelta(hours=3), RULES).sent == 0
    assert run_pass(any_demo_db, client, done + timedelta(hours=4), RULES).sent == 1
    assert run_pass(any_demo_db, client, done + timedelta(hours=5), RULES).sent == 0
    assert decisions(any_demo_db) == [(visit.id, AfterVisitKind.followup, ReminderStatus.sent, None),
                                      (visit.id, AfterVisitKind.survey, ReminderStatus.sent, None)]
    assert sent(any_demo_db) == [
        ("followup_next_checkup", "it", ['/book_appointment{"specialty": "cardiology"}']),
        ("visit_satisfaction", "it", followups.rating_payloads(visit.id))]
    assert audit.verify(any_demo_db).ok


@pytest.mark.parametrize(("specialty", "day", "template", "buttons"), [
    ("dermatology", date(2027, 3, 3), "followup_prescription_pickup", []),
    ("general_practice", FRIDAY, "followup_test", ['/book_appointment{"specialty": "blood_tests"}']),
])
def test_each_specialty_has_the_follow_up_configured_for_it(any_demo_db, client, specialty, day, template, buttons):
    visit = completed(any_demo_db, patient_id=EMILY, specialty=specialty, day=day)
    run_pass(any_demo_db, client, visit.end_at + timedelta(hours=2), RULES)
    assert sent(any_demo_db) == [(template, "en", buttons)]


def test_a_specialty_without_a_follow_up_gets_only_the_question(any_demo_db, client):
    visit = completed(any_demo_db, specialty="blood_tests")
    run_pass(any_demo_db, client, visit.end_at + timedelta(hours=4), RULES)
    assert decisions(any_demo_db) == [(visit.id, AfterVisitKind.followup, ReminderStatus.skipped, "not_configured"),
                                      (visit.id, AfterVisitKind.survey, ReminderStatus.sent, None)]


def test_the_rating_and_the_comment_are_stored_for_the_visit_asked_about(any_demo_db, client):
    visit = completed(any_demo_db)
    asked_at = visit.end_at + timedelta(hours=4)
    run_pass(any_demo_db, client, asked_at, RULES)
    giovanni, emily = contact_of(any_demo_db, GIOVANNI), contact_of(any_demo_db, EMILY)
    with pytest.raises(satisfaction.NotAsked):
        satisfaction.rate(any_demo_db, appointment_id=visit.id, contact_id=emily, rating=5)
    assert satisfaction.latest_asked(any_demo_db, giovanni, asked_at + timedelta(hours=1)) == visit.id
    satisfaction.rate(any_demo_db, appointment_id=visit.id, contact_id=giovanni, rating=5,
                      now=asked_at + timedelta(hours=1))
    satisfaction.rate(any_demo_db, appointment_id=visit.id, contact_id=giovanni, rating=4,
                      now=asked_at + timedelta(hours=2))  # changed their mind
    assert satisfaction.comment(any_demo_db, appointment_id=visit.id, contact_id=giovanni,
                                text="  Puntuali e   gentili ", now=asked_at + timedelta(hours=2))
    day = asked_at.astimezone(ROME).date()
    assert satisfaction.responses(any_demo_db, *scheduling.day_window(day)) == [
        satisfaction.Response(visit.id, 4, "Puntuali e gentili", asked_at + timedelta(hours=2))]
    with any_demo_db.reading() as session:
        stored = session.execute(text("SELECT comment FROM satisfaction_responses")).scalar_one()
    assert "Puntuali" not in stored  # encrypted at rest (the raw column, as someone with the disk sees it)
    with pytest.raises(ValueError):
        satisfaction.rate(any_demo_db, appointment_id=visit.id, contact_id=giovanni, rating=6)


def test_follow_ups_and_questions_need_the_followups_consent(any_demo_db, client):
    visit = completed(any_demo_db)
    consent.decide(any_demo_db, contact_of(any_demo_db, GIOVANNI), ["appointments", "results"], how="test")
    run_pass(any_demo_db, client, visit.end_at + timedelta(hours=4), RULES)
    assert decisions(any_demo_db) == [(visit.id, AfterVisitKind.followup, ReminderStatus.skipped, "no_consent"),
                                      (visit.id, AfterVisitKind.survey, ReminderStatus.skipped, "no_consent")]
    assert sent(any_demo_db) == []


def test_quiet_hours_defer_and_the_grace_bounds_after_visit_messages(any_demo_db, client):
    visit = book(any_demo_db, day=FRIDAY)
    evening = local(FRIDAY, time(19, 30))
    scheduling.complete(any_demo_db, appointment_id=visit.id, actor="staff:test", now=evening)
    assert run_pass(any_demo_db, client, local(FRIDAY, time(22)), RULES).sent == 0  # due 21:30: quiet
    assert run_pass(any_demo_db, client, local(date(2027, 3, 6), time(8)), RULES).sent == 2
    late = completed(any_demo_db, patient_id=EMILY)
    result = run_pass(any_demo_db, client, late.end_at + timedelta(days=5), RULES)
    assert (result.sent, result.skipped) == (0, 2)


def test_a_visit_not_checked_in_becomes_a_no_show_and_the_patient_is_offered_to_rebook(any_demo_db, client):
    visit = book(any_demo_db, day=FRIDAY)
    assert run_pass(any_demo_db, client, visit.end_at + timedelta(hours=1), RULES).no_shows == 0
    result = run_pass(any_demo_db, client, visit.end_at + timedelta(hours=2), RULES)
    assert (result.no_shows, result.sent) == (1, 1)
    assert scheduling.appointment(any_demo_db, visit.id).status is AppointmentStatus.no_show
    assert decisions(any_demo_db) == [(visit.id, AfterVisitKind.rebook, ReminderStatus.sent, None)]
    assert sent(any_demo_db) == [("missed_visit", "it", ['/book_appointment{"specialty": "cardiology"}'])]
    with any_demo_db.reading() as session:
        kinds = [e.kind for e in session.scalars(select(audit.AuditEntry).order_by(audit.AuditEntry.seq))]
    assert "appointment.no_show" in kinds and "after_visit.sent" in kinds


def test_staff_mark_a_no_show_at_once_and_only_after_the_visit_began(any_demo_db, client):
    visit = book(any_demo_db, day=FRIDAY)
    with pytest.raises(scheduling.AppointmentNotActive):
        scheduling.mark_no_show(any_demo_db, appointment_id=visit.id, actor="staff:test",
                                now=visit.start_at - timedelta(minutes=1))
    scheduling.mark_no_show(any_demo_db, appointment_id=visit.id, actor="staff:test",
                            now=visit.start_at + timedelta(minutes=20))
    with pytest.raises(scheduling.AppointmentNotActive):  # settled: not completed afterwards by mistake
        scheduling.complete(any_demo_db, appointment_id=visit.id, actor="staff:test", now=visit.end_at)
    assert run_pass(any_demo_db, client, visit.start_at + timedelta(minutes=21), RULES).sent == 1


def test_a_rebook_offer_needs_the_appointments_consent(any_demo_db, client):
    visit = book(any_demo_db, day=FRIDAY)
    consent.opt_out(any_demo_db, contact_of(any_demo_db, GIOVANNI), how="keyword:stop")
    run_pass(any_demo_db, client, visit.end_at + timedelta(hours=2), RULES)
    assert decisions(any_demo_db) == [(visit.id, AfterVisitKind.rebook, ReminderStatus.skipped, "no_consent")]


def test_the_worker_pass_runs_every_job(any_demo_db, client):
    """`clinic outreach run`'s pass: reminders, results ready, waitlist, after-visit, each failure contained."""
    import asyncio

    from clinic.outreach.__main__ import one_pass

    results = asyncio.run(one_pass(client))
    assert len(results) == 4 and all(r is not None for r in results)


def test_workers_racing_send_each_after_visit_message_once(any_demo_db):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from clinic.db import Database
    from clinic.whatsapp.client import WhatsAppClient
    from tests.outreach.conftest import OFFLINE

    visits = [completed(any_demo_db, patient_id=p) for p in (GIOVANNI, EMILY, 2)]
    missed = book(any_demo_db, patient_id=3, day=FRIDAY)  # not checked in: a no-show, then a rebook offer
    now = max(v.end_at for v in [*visits, missed]) + timedelta(hours=4)
    barrier = threading.Barrier(4)

    def worker(_) -> int:
        own = Database(any_demo_db.url)
        try:
            barrier.wait()
            return run_pass(own, WhatsAppClient(own, OFFLINE), now, RULES).sent
        finally:
            own.dispose()

    with ThreadPoolExecutor(4) as pool:
        assert sum(pool.map(worker, range(4))) == 7
    assert len(decisions(any_demo_db)) == len(sent(any_demo_db)) == 7
    with any_demo_db.reading() as session:
        kinds = [e.kind for e in session.scalars(select(audit.AuditEntry))]
    assert kinds.count("appointment.no_show") == 1
    assert audit.verify(any_demo_db).ok
