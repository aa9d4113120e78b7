"""KPIs: the figures a clinic manager runs the service by, each defined once here with its formula.

Every metric is a function of `(db, filters)`: `filters` names local clinic days `first`..`last`
(inclusive, the clinic's zone) and optionally a location and a specialty key, which narrow the
appointment figures (messages and tickets belong to no location or specialty and are clinic-wide).
`report()` lists every figure; the CLI (`clinic kpi`), the dashboard and its CSV all print that list,
so they cannot disagree. Formulas are in each docstring and in docs/kpi.md.

A figure whose data the clinic does not record yet (satisfaction answers, waitlist offers, messages
the bot acted on) is `None` or has nothing to divide, shown "n/a": never an invented number.

Nurse times are measured from the ticket's creation, the moment the bot handed over: the time a
patient spent with the bot before asking for a person is never counted as nurse time.
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone

from sqlalchemy import MetaData, Table, inspect, select
from sqlalchemy.orm import Session

from clinic import scheduling
from clinic.db import Database
from clinic.models import (
    Appointment,
    AppointmentReminder,
    AppointmentStatus,
    AuditEntry,
    HandoffTicket,
    InboundMessage,
    Location,
    OutboundMessage,
    OutboundStatus,
    Practitioner,
    ReminderStatus,
    Specialty,
)

# A conversation ends after this much silence from the patient: Rasa's `session_expiration_time` (domain.yml).
CONVERSATION_GAP = timedelta(minutes=60)
WINDOW_SOURCE = "whatsapp:window"  # the sending client's window templates (clinic.whatsapp.client.WINDOW_SOURCE)
RE_ENGAGEMENT = 131047  # Meta: the 24-hour window was closed when the message arrived
# Tables other parts of the clinic are expected to add; until they exist their figures are n/a.
SATISFACTION_TABLE = ("satisfaction_responses", ("rating", "answered_at"))  # rating 1..5 (clinic.satisfaction)
WAITLIST_OFFERS_TABLE = ("waitlist_offers", ("appointment_id",))  # the appointment an offer turned into


@dataclass(frozen=True)
class Filters:
    first: date
    last: date
    location: str | None = None  # location key
    specialty: str | None = None  # specialty key

    @property
    def window(self) -> tuple[datetime, datetime]:
        """The UTC interval [start, end) of the local days."""
        return scheduling.day_window(self.first, self.last)


@dataclass(frozen=True)
class Rate:
    """part / whole; `value` is None when there is nothing to divide."""

    part: int
    whole: int

    @property
    def value(self) -> float | None:
        return self.part / self.whole if self.whole else None


@dataclass(frozen=True)
class Durations:
    """Seconds, one per case; percentiles by nearest rank (the value below which q% of cases fall)."""

    seconds: tuple[float, ...]

    def percentile(self, q: float) -> float | None:
        if not self.seconds:
            return None
        ordered = sorted(self.seconds)
        return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]

    @property
    def p50(self) -> float | None:
        return self.percentile(50)

    @property
    def p95(self) -> float | None:
        return self.percentile(95)


# --- helpers ----------------------------------------------------------------------------------------


def _between(column, filters: Filters):
    start, end = filters.window
    return (column >= start, column < end)


def _appointment_query(filters: Filters, column):
    """Appointments whose `column` (start_at, created_at, changed_at) falls in the period, narrowed by
    location and specialty.
    """
    query = select(Appointment).where(*_between(column, filters))
    if filters.location:
        query = query.join(Location, Location.id == Appointment.location_id).where(Location.key == filters.location)
    if filters.specialty:
        query = query.join(Specialty, Specialty.id == Appointment.specialty_id).where(
            Specialty.key == filters.specialty)
    return query


def _optional_table(session: Session, spec: tuple[str, tuple[str, ...]]) -> Table | None:
    """A table another part of the clinic is expected to add, if it is there with the columns used."""
    name, columns = spec
    if not inspect(session.connection()).has_table(name):
        return None
    table = Table(name, MetaData(), autoload_with=session.connection())
    return table if all(c in table.c for c in columns) else None


def _chunks(ids: list[int], size: int = 500) -> Iterable[list[int]]:
    for i in range(0, len(ids), size):
        yield ids[i:i + size]


# --- appointments -------------------------------------------------------------------------------------


def _attended(session: Session, filters: Filters) -> list[tuple[Appointment, bool]]:
    """Appointments starting in the period whose attendance was recorded, each with whether a reminder went."""
    rows = session.scalars(_appointment_query(filters, Appointment.start_at).where(
        Appointment.status.in_([AppointmentStatus.completed, AppointmentStatus.no_show]))).all()
    reminded = _reminded_ids(session, [a.id for a in rows])
    return [(a, a.id in reminded) for a in rows]


def _reminded_ids(session: Session, ids: list[int]) -> set[int]:
    found: set[int] = set()
    for chunk in _chunks(ids):
        found.update(session.scalars(select(AppointmentReminder.appointment_id).where(
            AppointmentReminder.appointment_id.in_(chunk), AppointmentReminder.status == ReminderStatus.sent)))
    return found


def _no_show(rows: Iterable[Appointment]) -> Rate:
    rows = list(rows)
    return Rate(sum(a.status is AppointmentStatus.no_show for a in rows), len(rows))


def no_show_rate(db: Database, filters: Filters) -> Rate:
    """no_show / (completed + no_show), over appointments starting in the period. Appointments whose
    attendance was not recorded (still booked or confirmed after their time) and cancelled ones are left out.
    """
    with db.reading() as session:
        return _no_show(a for a, _ in _attended(session, filters))


def no_show_by(db: Database, filters: Filters, by: str) -> dict[str, Rate]:
    """The no-show rate per `specialty` (key), `practitioner` (key) or `reminder` ("reminded": at least one
    reminder sent for the appointment, else "not reminded").
    """
    with db.reading() as session:
        rows = _attended(session, filters)
        names: dict[int, str] = {}
        if by == "specialty":
            names = dict(session.execute(select(Specialty.id, Specialty.key)).all())
        elif by == "practitioner":
            names = dict(session.execute(select(Practitioner.id, Practitioner.key)).all())
        groups: dict[str, list[Appointment]] = defaultdict(list)
        for appointment, reminded in rows:
            if by == "specialty":
                key = names.get(appointment.specialty_id, "none")
            elif by == "practitioner":
                key = names[appointment.practitioner_id]
            elif by == "reminder":
                key = "reminded" if reminded else "not reminded"
            else:
                raise ValueError(f"no-show by specialty, practitioner or reminder, not {by!r}")
            groups[key].append(appointment)
        return {key: _no_show(group) for key, group in sorted(groups.items())}


def _confirmations(session: Session, filters: Filters) -> list[tuple[datetime, datetime | None]]:
    """(first reminder sent, confirmed at or None) for the appointments starting in the period that were
    reminded while not yet confirmed. "Confirmed" is the first `appointment.confirmed` audit entry
    after that reminder: the appointment's own status moves on (completed, no_show) and forgets it.
    """
    appointments = session.scalars(_appointment_query(filters, Appointment.start_at)).all()
    first_sent: dict[int, datetime] = {}
    for chunk in _chunks([a.id for a in appointments]):
        for appointment_id, decided_at in session.execute(
            select(AppointmentReminder.appointment_id, AppointmentReminder.decided_at).where(
                AppointmentReminder.appointment_id.in_(chunk), AppointmentReminder.status == ReminderStatus.sent)
        ):
            first_sent[appointment_id] = min(decided_at, first_sent.get(appointment_id, decided_at))
    confirmed: dict[int, list[datetime]] = defaultdict(list)
    for chunk in _chunks(list(first_sent)):
        subjects = [f"appointment:{i}" for i in chunk]
        for subject, at in session.execute(select(AuditEntry.subject, AuditEntry.at).where(
                AuditEntry.kind == "appointment.confirmed", AuditEntry.subject.in_(subjects))):
            confirmed[int(subject.split(":")[1])].append(at)
    cases = []
    for appointment_id, sent in first_sent.items():
        times = sorted(confirmed.get(appointment_id, []))
        if any(t < sent for t in times):
            continue  # confirmed before any reminder: the reminder had nothing to ask
        cases.append((sent, times[0] if times else None))
    return cases


def reminder_confirmation_rate(db: Database, filters: Filters) -> Rate:
    """Reminded appointments the patient then confirmed / reminded appointments, over appointments starting
    in the period that had at least one reminder sent and were not confirmed before it.
    """
    with db.reading() as session:
        cases = _confirmations(session, filters)
    return Rate(sum(confirmed is not None for _, confirmed in cases), len(cases))


def time_to_confirm(db: Database, filters: Filters) -> Durations:
    """Confirmation time − first reminder's time (when it was queued), for the confirmed cases above."""
    with db.reading() as session:
        cases = _confirmations(session, filters)
    return Durations(tuple((c - s).total_seconds() for s, c in cases if c is not None))


def _cancelled(session: Session, filters: Filters) -> list[Appointment]:
    return session.scalars(_appointment_query(filters, Appointment.changed_at).where(
        Appointment.status == AppointmentStatus.cancelled,
        Appointment.cancellation_reason.is_distinct_from("rescheduled"))).all()


def cancellations(db: Database, filters: Filters) -> int:
    """Appointments cancelled during the period (by anyone); a reschedule is a move, not a cancellation."""
    with db.reading() as session:
        return len(_cancelled(session, filters))


def _refills(session: Session, cancelled: list[Appointment]) -> dict[int, int]:
    """Cancelled appointment id → the appointment booked afterwards in its freed slot (still holding it)."""
    found: dict[int, int] = {}
    by_slot = {a.slot_id: a for a in cancelled if a.start_at > a.changed_at}  # freed before the visit
    for chunk in _chunks(list(by_slot)):
        for refill_id, slot_id, created_at in session.execute(
            select(Appointment.id, Appointment.slot_id, Appointment.created_at).where(
                Appointment.slot_id.in_(chunk), Appointment.status != AppointmentStatus.cancelled)
        ):
            if created_at >= by_slot[slot_id].changed_at:
                found[by_slot[slot_id].id] = refill_id
    return found


def freed_slots_refilled(db: Database, filters: Filters) -> Rate:
    """Cancellations in the period whose slot was booked again (by anyone) / cancellations made before
    the visit began (a slot freed after its time cannot be refilled).
    """
    with db.reading() as session:
        cancelled = [a for a in _cancelled(session, filters) if a.start_at > a.changed_at]
        return Rate(len(_refills(session, cancelled)), len(cancelled))


def freed_slots_refilled_from_waitlist(db: Database, filters: Filters) -> Rate | None:
    """Freed slots re-booked through a waitlist offer / freed slots (as above). n/a until waitlist offers
    are recorded (`waitlist_offers.appointment_id`: the appointment an offer turned into).
    """
    with db.reading() as session:
        offers = _optional_table(session, WAITLIST_OFFERS_TABLE)
        if offers is None:
            return None
        cancelled = [a for a in _cancelled(session, filters) if a.start_at > a.changed_at]
        refills = _refills(session, cancelled)
        from_offers = set(session.scalars(select(offers.c.appointment_id).where(
            offers.c.appointment_id.in_(list(refills.values()) or [-1]))))
        return Rate(sum(r in from_offers for r in refills.values()), len(cancelled))


BOOKING_CHANNELS = {"contact": "whatsapp", "staff": "staff"}  # created_by prefix → channel; else "other"


def bookings_by_channel(db: Database, filters: Filters) -> dict[str, int]:
    """New bookings made in the period by who made them (`created_by`): `whatsapp` (a contact, through the
    bot), `staff`, `other` (CLI, other systems through FHIR, the clinic itself). Reschedules are moves, not
    bookings, and are left out.
    """
    with db.reading() as session:
        rows = session.scalars(_appointment_query(filters, Appointment.created_at).where(
            Appointment.rescheduled_from_id.is_(None))).all()
    counts = Counter(BOOKING_CHANNELS.get(a.created_by.split(":")[0], "other") for a in rows)
    return {channel: counts.get(channel, 0) for channel in ("whatsapp", "staff", "other")}


# --- conversations and the nurses ---------------------------------------------------------------------


@dataclass(frozen=True)
class Conversation:
    contact_id: int
    start: datetime
    until: datetime | None  # the contact's next conversation, if any
    ticket_reasons: tuple[str, ...]


def _conversations(session: Session, filters: Filters) -> list[Conversation]:
    """Conversations started in the period: a contact's message after CONVERSATION_GAP of silence starts
    one (messages written while the contact's ticket is open are part of that handoff, not new
    conversations). A ticket opened between its start and the next one belongs to it.
    """
    start, end = filters.window
    messages: dict[int, list[datetime]] = defaultdict(list)
    for contact_id, at in session.execute(
        select(InboundMessage.contact_id, InboundMessage.received_at)
        .where(InboundMessage.received_at >= start - CONVERSATION_GAP, InboundMessage.rasa_text.isnot(None))
        .order_by(InboundMessage.contact_id, InboundMessage.received_at)
    ):
        messages[contact_id].append(at)
    tickets: dict[int, list[HandoffTicket]] = defaultdict(list)
    for ticket in session.scalars(select(HandoffTicket).where(
            HandoffTicket.contact_id.in_(list(messages) or [-1]),
            (HandoffTicket.resolved_at.is_(None)) | (HandoffTicket.resolved_at >= start - CONVERSATION_GAP))):
        tickets[ticket.contact_id].append(ticket)
    conversations = []
    for contact_id, times in messages.items():
        own = tickets.get(contact_id, [])

        def in_handoff(t: datetime) -> bool:
            return any(k.created_at <= t and (k.resolved_at is None or t < k.resolved_at) for k in own)  # noqa: B023

        starts = [t for i, t in enumerate(times)
                  if (i == 0 or t - times[i - 1] >= CONVERSATION_GAP) and not in_handoff(t)]
        for i, t in enumerate(starts):
            if not start <= t < end:
                continue
            until = starts[i + 1] if i + 1 < len(starts) else None
            reasons = tuple(k.reason for k in own if t <= k.created_at and (until is None or k.created_at < until))
            conversations.append(Conversation(contact_id, t, until, reasons))
    return conversations


def conversations_without_nurse(db: Database, filters: Filters) -> Rate:
    """Conversations started in the period that ended without a handoff ticket / conversations started."""
    with db.reading() as session:
        conversations = _conversations(session, filters)
    return Rate(sum(not c.ticket_reasons for c in conversations), len(conversations))


def handoff_rate_by_reason(db: Database, filters: Filters) -> dict[str, Rate]:
    """Per reason (request_human, medical_question, fallback, ...; the ticket's reason, urgent ones win):
    conversations started in the period handed to a nurse for that reason / conversations started.
    "all" is any reason.
    """
    with db.reading() as session:
        conversations = _conversations(session, filters)
    total = len(conversations)
    counts = Counter(reason for c in conversations for reason in set(c.ticket_reasons))
    rates = {"all": Rate(sum(bool(c.ticket_reasons) for c in conversations), total)}
    rates.update({reason: Rate(n, total) for reason, n in sorted(counts.items())})
    return rates


def _tickets(session: Session, filters: Filters) -> list[HandoffTicket]:
    return session.scalars(select(HandoffTicket).where(*_between(HandoffTicket.created_at, filters))).all()


def nurse_first_response(db: Database, filters: Filters) -> Durations:
    """First nurse reply − ticket creation, for tickets opened in the period and answered. The clock starts
    at the handoff: the time the patient spent with the bot before it is never counted.
    """
    with db.reading() as session:
        return Durations(tuple((t.first_reply_at - t.created_at).total_seconds()
                               for t in _tickets(session, filters) if t.first_reply_at))


def nurse_resolution(db: Database, filters: Filters) -> Durations:
    """Resolution − ticket creation, for tickets opened in the period and resolved (bot time excluded too)."""
    with db.reading() as session:
        return Durations(tuple((t.resolved_at - t.created_at).total_seconds()
                               for t in _tickets(session, filters) if t.resolved_at))


# --- messaging ------------------------------------------------------------------------------------------


def window_expiries(db: Database, filters: Filters) -> int:
    """Free-form messages (bot, nurse, outreach) queued in the period that found the contact's 24-hour
    window closed: held when queued (audit `message.outbound.queued` with status held), held still (also
    those held when the client came to send them), or refused by Meta with 131047 (the row's error code).
    """
    with db.reading() as session:
        held = {e.subject for e in session.scalars(select(AuditEntry).where(
            AuditEntry.kind == "message.outbound.queued", *_between(AuditEntry.at, filters)))
            if (e.data or {}).get("status") == OutboundStatus.held.value}
        refused = {f"outbound:{i}" for i in session.scalars(select(OutboundMessage.id).where(
            (OutboundMessage.error_code == RE_ENGAGEMENT) | (OutboundMessage.status == OutboundStatus.held),
            OutboundMessage.kind != "template", *_between(OutboundMessage.created_at, filters)))}
    return len(held | refused)


def template_fallbacks(db: Database, filters: Filters) -> int:
    """Window templates queued in the period ("the clinic has written to you"): one per closed window that
    held messages, sent instead of them.
    """
    with db.reading() as session:
        return len(session.scalars(select(OutboundMessage.id).where(
            OutboundMessage.source == WINDOW_SOURCE, *_between(OutboundMessage.created_at, filters))).all())


def delivery_failures(db: Database, filters: Filters) -> dict[str, int]:
    """Outbox rows that failed in the period (`failed_at`), per Meta's error code ("none": given up without
    one). Window templates dropped because the patient wrote first are no failure and are left out.
    """
    with db.reading() as session:
        rows = session.execute(select(OutboundMessage.error_code, OutboundMessage.source).where(
            OutboundMessage.status == OutboundStatus.failed, *_between(OutboundMessage.failed_at, filters))).all()
    counts = Counter(str(code) if code is not None else "none" for code, source in rows
                     if not (code is None and source == WINDOW_SOURCE))
    return dict(sorted(counts.items()))


def bot_reply_latency(db: Database, filters: Filters) -> Durations:
    """For each patient message for the bot received in the period: its first bot message queued in the
    outbox − the message's arrival (the webhook storing it), if the bot answered before the patient wrote
    again. Messages the bot does not answer (during a nurse handoff) are left out.
    """
    with db.reading() as session:
        return Durations(tuple(reply_latencies(session, *filters.window)))


def reply_latencies(session: Session, start: datetime, end: datetime) -> list[float]:
    """Seconds from arrival to the bot's first reply, for messages received in [start, end) (see above)."""
    inbound = session.execute(
        select(InboundMessage.contact_id, InboundMessage.received_at)
        .where(InboundMessage.received_at >= start, InboundMessage.received_at < end,
               InboundMessage.rasa_text.isnot(None))
        .order_by(InboundMessage.received_at)).all()
    contacts = list({contact_id for contact_id, _ in inbound})
    arrivals: dict[int, list[datetime]] = defaultdict(list)
    bot: dict[int, list[datetime]] = defaultdict(list)
    for chunk in _chunks(contacts):
        for contact_id, at in session.execute(
            select(InboundMessage.contact_id, InboundMessage.received_at)
            .where(InboundMessage.contact_id.in_(chunk), InboundMessage.received_at >= start,
                   InboundMessage.rasa_text.isnot(None))
            .order_by(InboundMessage.received_at)):
            arrivals[contact_id].append(at)
        for contact_id, at in session.execute(
            select(OutboundMessage.contact_id, OutboundMessage.created_at)
            .where(OutboundMessage.contact_id.in_(chunk), OutboundMessage.source == "bot",
                   OutboundMessage.created_at >= start)
            .order_by(OutboundMessage.created_at)):
            bot[contact_id].append(at)
    seconds = []
    for contact_id, at in inbound:
        following = next((t for t in arrivals[contact_id] if t > at), None)
        reply = next((r for r in bot[contact_id] if r >= at), None)
        if reply is not None and (following is None or reply < following):
            seconds.append((reply - at).total_seconds())
    return seconds


def fallback_rate(db: Database, filters: Filters) -> Rate:
    """Patient messages whose turn fell back / patient messages the bot acted on, received in the period.
    The WhatsApp channel stores each message's outcome once Rasa has handled it (`nlu_fallback`: the
    intent was `nlu_fallback` or a fallback action ran; clinic.whatsapp.channel.nlu_outcome). Messages
    the bot did nothing with (a nurse held the conversation), failed ones and reactions have none and
    are left out, whatever Rasa's tracker store is.
    """
    start, end = filters.window
    with db.reading() as session:
        outcomes = session.scalars(select(InboundMessage.nlu_fallback).where(
            InboundMessage.nlu_fallback.is_not(None), InboundMessage.received_at >= start,
            InboundMessage.received_at < end)).all()
    return Rate(sum(outcomes), len(outcomes))


@dataclass(frozen=True)
class Satisfaction:
    average: float | None
    distribution: dict[int, int]  # score → answers


def satisfaction(db: Database, filters: Filters) -> Satisfaction | None:
    """Average score (1..5) of the satisfaction answers given in the period, and how many gave each score.
    n/a until satisfaction answers are recorded (`satisfaction_responses.rating`, `.answered_at`).
    """
    with db.reading() as session:
        table = _optional_table(session, SATISFACTION_TABLE)
        if table is None:
            return None
        start, end = (moment.astimezone(timezone.utc).replace(tzinfo=None) for moment in filters.window)
        # Reflected, the column is a plain DateTime: the clinic stores naive UTC (models.UTCDateTime).
        scores = [int(s) for s in session.scalars(select(table.c.rating).where(
            table.c.answered_at >= start, table.c.answered_at < end))]
    counts = Counter(scores)
    return Satisfaction(sum(scores) / len(scores) if scores else None,
                        {score: counts.get(score, 0) for score in range(1, 6)})


# --- the report: every figure, one list for the CLI, the dashboard and the CSV ----------------------------


@dataclass(frozen=True)
class Figure:
    """One line of the report. `value` is a fraction for "%", seconds for "s"/"min" (shown in that unit),
    a count, or a score; None is n/a. `part`/`whole` back a rate.
    """

    key: str
    label: str
    unit: str  # "%", "count", "s", "min", "score"
    value: float | int | None
    part: int | None = None
    whole: int | None = None

    @property
    def text(self) -> str:
        if self.value is None:
            return "n/a"
        if self.unit == "%":
            return f"{self.value * 100:.1f}% ({self.part}/{self.whole})"
        if self.unit == "min":
            return f"{self.value / 60:.1f} min"
        if self.unit == "s":
            return f"{self.value:.1f} s"
        if self.unit == "score":
            return f"{self.value:.2f}"
        return str(self.value)


def _rate(key: str, label: str, rate: Rate | None) -> Figure:
    if rate is None:
        return Figure(key, label, "%", None)
    return Figure(key, label, "%", rate.value, rate.part, rate.whole)


def _spread(key: str, label: str, unit: str, durations: Durations) -> list[Figure]:
    return [Figure(f"{key}_p50", f"{label}, median", unit, durations.p50),
            Figure(f"{key}_p95", f"{label}, 95th percentile", unit, durations.p95),
            Figure(f"{key}_count", f"{label}: cases", "count", len(durations.seconds))]


def report(db: Database, filters: Filters) -> list[Figure]:
    """Every KPI for the period, in a fixed order (groups expand to one line per group)."""
    figures = [_rate("no_show_rate", "No-show rate", no_show_rate(db, filters))]
    for by in ("specialty", "practitioner", "reminder"):
        for name, rate in no_show_by(db, filters, by).items():
            figures.append(_rate(f"no_show_rate.{by}.{name}", f"No-show rate, {by} {name}", rate))
    figures.append(_rate("reminder_confirmation_rate", "Reminders confirmed",
                         reminder_confirmation_rate(db, filters)))
    figures += _spread("time_to_confirm", "Time from reminder to confirmation", "min", time_to_confirm(db, filters))
    figures.append(Figure("cancellations", "Cancellations", "count", cancellations(db, filters)))
    figures.append(_rate("freed_slots_refilled", "Freed slots re-booked", freed_slots_refilled(db, filters)))
    figures.append(_rate("freed_slots_refilled_from_waitlist", "Freed slots re-booked from the waitlist",
                         freed_slots_refilled_from_waitlist(db, filters)))
    for channel, count in bookings_by_channel(db, filters).items():
        figures.append(Figure(f"bookings.{channel}", f"Bookings by {channel}", "count", count))
    figures.append(_rate("conversations_without_nurse", "Conversations resolved without a nurse",
                         conversations_without_nurse(db, filters)))
    for reason, rate in handoff_rate_by_reason(db, filters).items():
        figures.append(_rate(f"handoff_rate.{reason}", f"Handoff rate, {reason.replace('_', ' ')}", rate))
    figures += _spread("nurse_first_response", "Nurse first response", "min", nurse_first_response(db, filters))
    figures += _spread("nurse_resolution", "Nurse resolution", "min", nurse_resolution(db, filters))
    figures.append(Figure("window_expiries", "Messages that met a closed 24-hour window", "count",
                          window_expiries(db, filters)))
    figures.append(Figure("template_fallbacks", "Window templates sent instead", "count",
                          template_fallbacks(db, filters)))
    for code, count in delivery_failures(db, filters).items():
        figures.append(Figure(f"delivery_failures.{code}", f"Delivery failures, error {code}", "count", count))
    figures += _spread("bot_reply_latency", "Bot reply latency", "s", bot_reply_latency(db, filters))
    figures.append(_rate("fallback_rate", "Messages not understood (NLU fallback)", fallback_rate(db, filters)))
    score = satisfaction(db, filters)
    figures.append(Figure("satisfaction_average", "Satisfaction, average (1-5)", "score",
                          score.average if score else None))
    for value in range(1, 6):
        figures.append(Figure(f"satisfaction.{value}", f"Satisfaction answers scoring {value}", "count",
                              score.distribution[value] if score else None))
    return figures


# Figures the dashboard charts week by week.
TREND_KEYS = ("no_show_rate", "bookings.whatsapp", "bookings.staff", "handoff_rate.all",
              "nurse_first_response_p50", "bot_reply_latency_p95")


def weeks(filters: Filters) -> list[Filters]:
    """The period cut into weeks (Monday to Sunday), the first and last clipped to it."""
    cuts = []
    first = filters.first
    while first <= filters.last:
        last = min(first + timedelta(days=6 - first.weekday()), filters.last)
        cuts.append(replace(filters, first=first, last=last))
        first = last + timedelta(days=1)
    return cuts


def trends(db: Database, filters: Filters, keys: tuple[str, ...] = TREND_KEYS) -> list[tuple[date, dict[str, Figure]]]:
    """Per week of the period: its first day and the chosen figures, computed by `report` itself."""
    return [(week.first, {f.key: f for f in report(db, week) if f.key in keys}) for week in weeks(filters)]


CSV_COLUMNS = ("key", "label", "value", "unit", "part", "whole", "shown")


def csv_text(figures: list[Figure]) -> str:
    """The report as CSV (for a spreadsheet): raw value (fraction, seconds, count) and what is shown."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for f in figures:
        writer.writerow((f.key, f.label, "" if f.value is None else f.value, f.unit,
                         "" if f.part is None else f.part, "" if f.whole is None else f.whole, f.text))
    return out.getvalue()
