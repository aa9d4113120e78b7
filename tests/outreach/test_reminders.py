"""Reminders against a real database (SQLite and PostgreSQL): sent once, never stale, only with consent."""

from datetime import date, time, timedelta

from clinic import consent, scheduling
from clinic.models import ReminderStatus
from clinic.outreach import reminders as outreach
from clinic.outreach.quiet_hours import next_allowed
from clinic.outreach.reminders import send_due
from tests.outreach.conftest import EMILY, GIOVANNI, RULES, audit_kinds, book, local, outbox, reminders


def test_a_due_reminder_is_queued_once_with_its_decision_and_audit_entry(any_demo_db, client):
    visit = book(any_demo_db)
    moment = visit.start_at - timedelta(hours=72)
    assert send_due(any_demo_db, client, moment - timedelta(minutes=1), RULES).sent == 0
    assert send_due(any_demo_db, client, moment, RULES).sent == 1
    assert send_due(any_demo_db, client, moment + timedelta(minutes=5), RULES).sent == 0
    (row,) = reminders(any_demo_db)
    (message,) = outbox(any_demo_db)
    assert (row.appointment_id, row.offset_hours, row.status, row.outbound_id) == (
        visit.id, 72, ReminderStatus.sent, message.id)
    assert message.biz_opaque_callback_data == f"reminder:{row.id}"
    assert message.body["template"]["name"] == "appointment_reminder"
    assert audit_kinds(any_demo_db) == ["reminder.sent"]
    assert send_due(any_demo_db, client, visit.start_at - timedelta(hours=24), RULES).sent == 1
    assert [r.offset_hours for r in reminders(any_demo_db)] == [72, 24]


def test_the_template_carries_the_visit_the_preparation_and_the_three_payloads(any_demo_db, client):
    visit = book(any_demo_db, patient_id=EMILY, specialty="blood_tests", day=date(2027, 3, 5))
    # the lab opens early: 72 h before falls in quiet hours, so the reminder waits for 08:00
    send_due(any_demo_db, client, next_allowed(visit.start_at - timedelta(hours=72), RULES.quiet, RULES.zone), RULES)
    (message,) = outbox(any_demo_db)
    template = message.body["template"]
    assert template["language"] == {"code": "en"}
    body, *buttons = template["components"]
    local_start = visit.start_at.astimezone(RULES.zone)
    assert [p["text"] for p in body["parameters"]] == [
        "Emily", "Friday 5 March", local_start.strftime("%H:%M"), visit.practitioner_name,
        f"{visit.location_name}, {visit.location_address}",
        "Please fast for at least 8 hours beforehand; water is fine."]
    assert [b["parameters"][0]["payload"] for b in buttons] == [
        f'/confirm_appointment{{"appointment_id": "{visit.id}"}}',
        f'/reschedule_appointment{{"appointment_id": "{visit.id}"}}',
        f'/cancel_appointment{{"appointment_id": "{visit.id}"}}']


def test_a_rescheduled_appointment_is_reminded_at_its_new_time_only(any_demo_db, client):
    old = book(any_demo_db)
    new_slot = scheduling.free_slots(any_demo_db, scheduling.SlotQuery(
        *scheduling.day_window(date(2027, 3, 8)), specialty="cardiology"), now=old.start_at, limit=1)[0]
    new = scheduling.reschedule(any_demo_db, appointment_id=old.id, new_slot_id=new_slot.id, actor="staff:test",
                                now=old.start_at - timedelta(hours=80))
    assert send_due(any_demo_db, client, old.start_at - timedelta(hours=72), RULES).sent == 0
    assert send_due(any_demo_db, client, old.start_at - timedelta(hours=24), RULES).sent == 0
    assert send_due(any_demo_db, client, new.start_at - timedelta(hours=72), RULES).sent == 1
    assert [r.appointment_id for r in reminders(any_demo_db)] == [new.id]


def test_a_change_between_planning_and_sending_is_noticed(any_demo_db, client):
    visit = book(any_demo_db)
    moment = visit.start_at - timedelta(hours=72)
    (due,) = outreach.due_now(any_demo_db, moment, RULES)
    scheduling.cancel(any_demo_db, appointment_id=visit.id, reason="test", actor="staff:test", now=moment)
    assert outreach.settle(any_demo_db, client, due, moment) is None
    assert reminders(any_demo_db) == [] and outbox(any_demo_db) == []


def test_a_cancelled_appointment_gets_no_reminder(any_demo_db, client):
    visit = book(any_demo_db)
    scheduling.cancel(any_demo_db, appointment_id=visit.id, reason="test", actor="staff:test",
                      now=visit.start_at - timedelta(hours=100))
    for hours in (72, 24, 1):
        assert send_due(any_demo_db, client, visit.start_at - timedelta(hours=hours), RULES).sent == 0
    assert reminders(any_demo_db) == [] and outbox(any_demo_db) == []


def test_past_the_grace_the_reminder_is_skipped_and_the_skip_recorded(any_demo_db, client):
    visit = book(any_demo_db)
    result = send_due(any_demo_db, client, visit.start_at - timedelta(hours=72) + timedelta(hours=7), RULES)
    assert (result.sent, result.skipped) == (0, 1)
    (row,) = reminders(any_demo_db)
    assert (row.status, row.reason, row.outbound_id) == (ReminderStatus.skipped, "late", None)
    assert audit_kinds(any_demo_db) == ["reminder.skipped"] and outbox(any_demo_db) == []


def test_quiet_hours_defer_the_reminder_to_the_morning(any_demo_db, client):
    visit = book(any_demo_db)
    start = visit.start_at.astimezone(RULES.zone)
    quiet = RULES.__class__(RULES.offsets, RULES.grace, (time(start.hour - 1), time(start.hour + 1)), RULES.zone)
    assert send_due(any_demo_db, client, visit.start_at - timedelta(hours=72), quiet).sent == 0
    assert reminders(any_demo_db) == []
    end_of_quiet = local(start.date() - timedelta(days=3), time(start.hour + 1))
    assert send_due(any_demo_db, client, end_of_quiet, quiet).sent == 1


def test_nothing_goes_to_a_contact_without_consent_or_after_stop(any_demo_db, client):
    first, second = book(any_demo_db), book(any_demo_db, day=date(2027, 3, 8))
    giovanni = outreach_contact(any_demo_db, GIOVANNI)
    consent.decide(any_demo_db, giovanni, ["results"], how="test")
    send_due(any_demo_db, client, first.start_at - timedelta(hours=72), RULES)
    consent.decide(any_demo_db, giovanni, consent.PURPOSES, how="test")
    consent.opt_out(any_demo_db, giovanni, how="keyword:stop")
    send_due(any_demo_db, client, second.start_at - timedelta(hours=72), RULES)
    assert [(r.status, r.reason) for r in reminders(any_demo_db)] == [
        (ReminderStatus.skipped, "no_consent"), (ReminderStatus.skipped, "no_consent")]
    assert outbox(any_demo_db) == []


def outreach_contact(db, patient_id: int) -> int:
    with db.reading() as session:
        return outreach.recipient(session, patient_id).id


def test_a_reply_is_bound_to_the_reminded_appointment(any_demo_db, client):
    visit = book(any_demo_db)
    moment = visit.start_at - timedelta(hours=72)
    send_due(any_demo_db, client, moment, RULES)
    (row,) = reminders(any_demo_db)
    giovanni = outreach_contact(any_demo_db, GIOVANNI)
    later = moment + timedelta(hours=2)
    assert outreach.reminded_appointment(any_demo_db, giovanni, f"reminder:{row.id}", later) == visit.id
    assert outreach.reminded_appointment(any_demo_db, giovanni, None, later) == visit.id
    assert outreach.reminded_appointment(any_demo_db, giovanni, None, moment + timedelta(hours=25)) is None
    assert outreach.reminded_appointment(any_demo_db, giovanni, "outbox:3", later) == visit.id
    scheduling.cancel(any_demo_db, appointment_id=visit.id, reason="test", actor="staff:test", now=later)
    assert outreach.reminded_appointment(any_demo_db, giovanni, f"reminder:{row.id}", later) is None


def test_one_failing_reminder_does_not_hold_up_the_others(any_demo_db, client, monkeypatch):
    first, second = book(any_demo_db), book(any_demo_db)
    moment = max(first.start_at, second.start_at) - timedelta(hours=72)
    build = outreach.reminder_message

    def broken_for_the_first(appointment, contact):
        if appointment.id == first.id:
            raise ValueError("a template that cannot be built")
        return build(appointment, contact)

    monkeypatch.setattr(outreach, "reminder_message", broken_for_the_first)
    result = send_due(any_demo_db, client, moment, RULES)
    assert (result.sent, result.passed_by) == (1, 1)
    assert [r.appointment_id for r in reminders(any_demo_db)] == [second.id]  # the failed one left no trace
    monkeypatch.setattr(outreach, "reminder_message", build)
    assert send_due(any_demo_db, client, moment + timedelta(minutes=1), RULES).sent == 1
