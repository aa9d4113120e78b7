"""Every KPI formula pinned on the hand-computed week of `tests.kpi.fixture`, on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timezone

import pytest
from sqlalchemy import select

from clinic import kpi
from clinic.kpi import Durations, Rate
from clinic.models import (
    Appointment,
    AppointmentStatus,
    InboundMessage,
    OfferStatus,
    OutboundMessage,
    OutboundStatus,
    SatisfactionResponse,
    WaitlistEntry,
    WaitlistOffer,
    utcnow,
)
from clinic.settings import settings
from clinic.whatsapp.client import WhatsAppClient
from clinic.whatsapp.types import GraphConfig
from tests.kpi.fixture import WEEK, _contact, _outbound, _says, at, build

MIN = 60


@pytest.fixture
def week_db(any_db):
    build(any_db)
    return any_db


def test_no_show_rate_overall_and_by_specialty_practitioner_and_reminder(week_db):
    assert kpi.no_show_rate(week_db, WEEK) == Rate(2, 5)  # A2, A3 of A1-A5; unrecorded and cancelled left out
    assert kpi.no_show_by(week_db, WEEK, "specialty") == {"cardiology": Rate(1, 3), "dermatology": Rate(1, 2)}
    assert kpi.no_show_by(week_db, WEEK, "practitioner") == {
        "bianchi": Rate(1, 2), "esposito": Rate(1, 2), "russo": Rate(0, 1)}
    assert kpi.no_show_by(week_db, WEEK, "reminder") == {"not reminded": Rate(1, 1), "reminded": Rate(1, 4)}


def test_filters_narrow_appointment_figures(week_db):
    assert kpi.no_show_rate(week_db, replace(WEEK, location="navigli")) == Rate(1, 2)
    assert kpi.no_show_rate(week_db, replace(WEEK, specialty="cardiology")) == Rate(1, 3)
    assert kpi.bookings_by_channel(week_db, replace(WEEK, specialty="cardiology")) == {
        "whatsapp": 0, "staff": 2, "other": 0}


def test_reminder_confirmations_count_only_what_the_reminder_asked(week_db):
    # A1 and A4 confirmed after their reminder, A2 never; A5 had confirmed before its reminder.
    assert kpi.reminder_confirmation_rate(week_db, WEEK) == Rate(2, 3)
    assert kpi.time_to_confirm(week_db, WEEK) == Durations((90 * MIN, 30 * MIN))
    assert kpi.time_to_confirm(week_db, WEEK).p50 == 30 * MIN
    assert kpi.time_to_confirm(week_db, WEEK).p95 == 90 * MIN


def test_cancellations_and_freed_slots(week_db):
    assert kpi.cancellations(week_db, WEEK) == 2  # A6, A8; A9's reschedule is a move
    assert kpi.freed_slots_refilled(week_db, WEEK) == Rate(1, 2)  # A6's slot went to A7
    assert kpi.freed_slots_refilled_from_waitlist(week_db, WEEK) == Rate(0, 2)  # A7 was booked by staff
    with week_db.transaction() as session:  # as if A7 had come from an accepted waitlist offer
        cancelled = session.scalars(select(Appointment).where(Appointment.status == AppointmentStatus.cancelled)).all()
        refill = session.scalars(select(Appointment).where(
            Appointment.slot_id.in_([a.slot_id for a in cancelled]),
            Appointment.status != AppointmentStatus.cancelled)).one()
        entry = WaitlistEntry(patient_id=refill.patient_id, practitioner_id=refill.practitioner_id,
                              wanted_from=date(2027, 3, 1), wanted_until=date(2027, 3, 7))
        session.add(entry)
        session.flush()
        session.add(WaitlistOffer(entry_id=entry.id, slot_id=refill.slot_id, status=OfferStatus.accepted,
                                  appointment_id=refill.id, offered_at=refill.created_at,
                                  expires_at=refill.created_at))
    assert kpi.freed_slots_refilled_from_waitlist(week_db, WEEK) == Rate(1, 2)


def test_bookings_by_channel(week_db):
    assert kpi.bookings_by_channel(week_db, WEEK) == {"whatsapp": 3, "staff": 2, "other": 1}


def test_conversations_and_handoffs(week_db):
    # C1 twice (10:00, 12:00), C2, C3, C4; C1's 13:10 message was written to the nurse.
    assert kpi.conversations_without_nurse(week_db, WEEK) == Rate(2, 5)
    assert kpi.handoff_rate_by_reason(week_db, WEEK) == {
        "all": Rate(3, 5), "fallback": Rate(1, 5), "medical_question": Rate(1, 5), "request_human": Rate(1, 5)}


def test_nurse_times_start_at_the_handoff_never_counting_bot_time(week_db):
    first = kpi.nurse_first_response(week_db, WEEK)
    # C1 spent an hour with the bot (12:00-13:00): measured from the conversation, its first reply would
    # take 80 min; from the handoff it took 20.
    assert sorted(first.seconds) == [4 * MIN, 20 * MIN]
    assert (first.p50, first.p95) == (4 * MIN, 20 * MIN)
    resolution = kpi.nurse_resolution(week_db, WEEK)
    assert sorted(resolution.seconds) == [30 * MIN, 60 * MIN]  # C4's waiting ticket is not resolved


def test_bot_reply_latency_leaves_out_messages_to_the_nurse(week_db):
    latency = kpi.bot_reply_latency(week_db, WEEK)
    assert sorted(latency.seconds) == [1, 1, 2, 3, 4, 5, 6, 10, 30]
    assert (latency.p50, latency.p95) == (4, 30)


def test_a_period_without_data_gives_no_rates(week_db):
    empty = kpi.Filters(date(2027, 4, 5), date(2027, 4, 11))
    assert kpi.no_show_rate(week_db, empty).value is None
    assert kpi.nurse_first_response(week_db, empty).p50 is None
    figures = {f.key: f.text for f in kpi.report(week_db, empty)}
    assert figures["no_show_rate"] == "n/a"
    assert figures["cancellations"] == "0"


def test_missing_data_is_n_a_not_a_number(week_db):
    figures = {f.key: f.text for f in kpi.report(week_db, WEEK)}
    assert figures["satisfaction_average"] == "n/a"  # nobody answered
    assert figures["freed_slots_refilled_from_waitlist"].startswith("0.0% (0/")  # no offer was accepted
    assert figures["no_show_rate"] == "40.0% (2/5)"
    assert figures["nurse_first_response_p95"] == "20.0 min"
    assert figures["bot_reply_latency_p50"] == "4.0 s"


def test_the_fallback_rate_counts_the_turns_the_bot_acted_on(week_db):
    # C1 12:30, C3 20:00 (nlu_fallback) and C4 (a fallback action) of 9 turns; C1's 13:10 message to the nurse
    # has no outcome, and neither has anything after the week:
    _says(week_db, _contact(week_db, "393339990042"), at(8, 9), 1, nlu=("nlu_fallback", True))
    assert kpi.fallback_rate(week_db, WEEK) == Rate(3, 9)
    assert kpi.fallback_rate(week_db, kpi.Filters(date(2027, 3, 2), date(2027, 3, 3))) == Rate(1, 3)
    figures = {f.key: f.text for f in kpi.report(week_db, WEEK)}
    assert figures["fallback_rate"] == "33.3% (3/9)"
    nothing = {f.key: f.text for f in kpi.report(week_db, kpi.Filters(date(2027, 4, 5), date(2027, 4, 11)))}
    assert nothing["fallback_rate"] == "n/a"


def test_satisfaction_answers(week_db):
    with week_db.transaction() as session:
        visits = session.scalars(select(Appointment.id).order_by(Appointment.id).limit(4)).all()
        days = (2, 3, 4, 20)  # the last one falls outside the week
        session.add_all([SatisfactionResponse(appointment_id=visit, rating=rating,
                                              answered_at=datetime(2027, 3, day, 10, tzinfo=timezone.utc))
                         for visit, rating, day in zip(visits, (5, 4, 5, 1), days, strict=True)])
    score = kpi.satisfaction(week_db, WEEK)
    assert score.average == pytest.approx(14 / 3)
    assert score.distribution == {1: 0, 2: 0, 3: 0, 4: 1, 5: 2}


def test_window_expiries_template_fallbacks_and_failures(any_db):
    contact = _contact(any_db, "393339990009")  # never wrote: its 24-hour window is closed
    client = WhatsAppClient(any_db, GraphConfig.from_settings(settings()))
    client.enqueue(contact, [{"type": "text", "text": {"body": "one"}}, {"type": "text", "text": {"body": "two"}}],
                   source="inbox:rossi")
    now = utcnow()
    with any_db.transaction() as s:
        s.add(_outbound(contact, now, "bot", error_code=131047, status=OutboundStatus.held))
        for code in (131026, 131026, 131049):
            s.add(_outbound(contact, now, "bot", error_code=code, status=OutboundStatus.failed, failed_at=now))
        s.add(_outbound(contact, now, "whatsapp:window", kind="template", status=OutboundStatus.failed,
                        failed_at=now, error_title="window reopened before it was sent"))
    today = kpi.Filters(now.astimezone(settings().zone).date(), now.astimezone(settings().zone).date())
    assert kpi.window_expiries(any_db, today) == 3  # two held at queueing, one refused by Meta with 131047
    with any_db.reading() as s:
        templates = s.query(OutboundMessage).filter(OutboundMessage.source == "whatsapp:window").count()
    assert templates == 2  # the one queued for the held pair, and the dropped one above
    assert kpi.template_fallbacks(any_db, today) == 2
    assert kpi.delivery_failures(any_db, today) == {"131026": 2, "131049": 1}  # the dropped template is none


def test_weeks_cut_the_period_at_mondays():
    cuts = kpi.weeks(kpi.Filters(date(2027, 3, 3), date(2027, 3, 16)))
    assert [(w.first, w.last) for w in cuts] == [
        (date(2027, 3, 3), date(2027, 3, 7)), (date(2027, 3, 8), date(2027, 3, 14)),
        (date(2027, 3, 15), date(2027, 3, 16))]


def test_trends_are_the_report_week_by_week(week_db):
    weekly = kpi.trends(week_db, kpi.Filters(date(2027, 3, 1), date(2027, 3, 14)))
    assert [first for first, _ in weekly] == [date(2027, 3, 1), date(2027, 3, 8)]
    assert weekly[0][1]["no_show_rate"].text == "40.0% (2/5)"
    assert weekly[1][1]["no_show_rate"].text == "n/a"


def test_the_period_is_clinic_days_not_utc_days(any_db):
    contact = _contact(any_db, "393339990010")
    with any_db.transaction() as s:  # 23:30 UTC on 28 February is 00:30 on 1 March in Rome
        moment = datetime(2027, 2, 28, 23, 30, tzinfo=timezone.utc)
        s.add(InboundMessage(wamid="wamid.midnight", contact_id=contact, phone_number_id="1", type="text",
                             payload={}, rasa_text="ciao", sent_at=moment, received_at=moment))
    assert kpi.conversations_without_nurse(any_db, kpi.Filters(date(2027, 3, 1), date(2027, 3, 1))) == Rate(1, 1)
    assert kpi.conversations_without_nurse(any_db, kpi.Filters(date(2027, 2, 28), date(2027, 2, 28))) == Rate(0, 0)
