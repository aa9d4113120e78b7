"""When a reminder is due: the pure rules (offsets, booked-after, grace, quiet hours, never after the visit)."""

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from clinic.outreach.quiet_hours import allowed_time, is_quiet, next_allowed
from clinic.outreach.reminders import Upcoming, plan
from tests.outreach.conftest import ROME, RULES, local

VISIT = local(date(2027, 3, 5), time(10))  # Friday 10:00
BOOKED = local(date(2027, 3, 1), time(8))
APPOINTMENT = Upcoming(7, VISIT, BOOKED)


def verdicts(now: datetime, appointment=APPOINTMENT, settled=frozenset(), rules=RULES) -> list[tuple[int, str]]:
    return [(d.offset_hours, d.verdict) for d in plan([appointment], set(settled), now, rules)]


def test_each_offset_falls_due_at_its_hour_before_the_visit():
    assert verdicts(VISIT - timedelta(hours=72, seconds=1)) == []
    assert verdicts(VISIT - timedelta(hours=72)) == [(72, "send")]
    assert verdicts(VISIT - timedelta(hours=24)) == [(72, "late"), (24, "send")]  # the 72 h one never went out
    assert verdicts(VISIT - timedelta(hours=24), settled={(7, 72)}) == [(24, "send")]


def test_a_settled_reminder_is_not_due_again():
    assert verdicts(VISIT - timedelta(hours=72), settled={(7, 72)}) == []


def test_no_reminder_for_a_moment_before_the_booking_was_made():
    booked_late = Upcoming(7, VISIT, VISIT - timedelta(hours=30))
    assert verdicts(VISIT - timedelta(hours=29), booked_late) == []
    assert verdicts(VISIT - timedelta(hours=24), booked_late) == [(24, "send")]


def test_a_late_reminder_goes_out_within_the_grace_and_is_skipped_after_it():
    assert verdicts(VISIT - timedelta(hours=72) + timedelta(hours=5, minutes=59)) == [(72, "send")]
    assert verdicts(VISIT - timedelta(hours=72) + timedelta(hours=6, minutes=1)) == [(72, "late")]


def test_never_once_the_visit_has_begun():
    assert verdicts(VISIT, settled={(7, 72)}) == []
    assert verdicts(VISIT + timedelta(minutes=1)) == []
    generous = RULES.__class__(RULES.offsets, timedelta(days=10), RULES.quiet, RULES.zone)
    assert verdicts(VISIT - timedelta(minutes=1), settled={(7, 72)}, rules=generous) == [(24, "send")]


def test_when_two_offsets_are_due_together_only_the_nearer_goes_out():
    generous = RULES.__class__(RULES.offsets, timedelta(days=10), RULES.quiet, RULES.zone)
    assert sorted(verdicts(VISIT - timedelta(hours=23), rules=generous)) == [(24, "send"), (72, "superseded")]


def test_quiet_hours_defer_a_reminder_to_their_end_without_eating_its_grace():
    early = Upcoming(8, local(date(2027, 3, 5), time(7, 30)), BOOKED)  # 24 h before: Thursday 07:30
    assert verdicts(local(date(2027, 3, 4), time(7, 45)), early, settled={(8, 72)}) == []
    assert verdicts(local(date(2027, 3, 4), time(8, 0)), early, settled={(8, 72)}) == [(24, "send")]
    evening = Upcoming(9, local(date(2027, 3, 5), time(20, 50)), BOOKED)  # due Thursday 20:50
    one_hour = RULES.__class__(RULES.offsets, timedelta(hours=1), RULES.quiet, RULES.zone)
    # the worker was down from 20:49 to 08:05: ten minutes of allowed time have passed, not eleven hours
    assert verdicts(local(date(2027, 3, 4), time(22)), evening, {(9, 72)}, one_hour) == []
    assert verdicts(local(date(2027, 3, 5), time(8, 5)), evening, {(9, 72)}, one_hour) == [(24, "send")]
    assert verdicts(local(date(2027, 3, 5), time(9, 6)), evening, {(9, 72)}, one_hour) == [(24, "late")]


def test_quiet_hours_across_midnight():
    quiet = (time(21), time(8))
    assert [is_quiet(local(date(2027, 3, 1), time(h)), quiet, ROME) for h in (7, 8, 20, 21, 23)] == [
        True, False, False, True, True]
    assert next_allowed(local(date(2027, 3, 1), time(22)), quiet, ROME) == local(date(2027, 3, 2), time(8))
    assert next_allowed(local(date(2027, 3, 2), time(3)), quiet, ROME) == local(date(2027, 3, 2), time(8))
    assert next_allowed(local(date(2027, 3, 2), time(9)), quiet, ROME) == local(date(2027, 3, 2), time(9))
    assert next_allowed(local(date(2027, 3, 2), time(9)), None, ROME) == local(date(2027, 3, 2), time(9))
    span = allowed_time(local(date(2027, 3, 1), time(20)), local(date(2027, 3, 2), time(9)), quiet, ROME)
    assert span == timedelta(hours=2)
    # across the switch to summer time (28 March 2027): quiet hours still end at 08:00 local
    assert next_allowed(local(date(2027, 3, 27), time(23)), quiet, ROME) == local(date(2027, 3, 28), time(8))


def elapsed(start: datetime, end: datetime) -> timedelta:
    return end.astimezone(ZoneInfo("UTC")) - start.astimezone(ZoneInfo("UTC"))


# Summer time starts on Sunday 28 March 2027 and ends on Sunday 31 October 2027 in Rome.
def test_day_offsets_keep_the_visits_clock_time_across_the_switch_to_summer_time():
    monday = Upcoming(11, local(date(2027, 3, 29), time(10)), BOOKED)
    friday_ten, sunday_ten = local(date(2027, 3, 26), time(10)), local(date(2027, 3, 28), time(10))
    assert verdicts(friday_ten - timedelta(minutes=1), monday) == []
    assert verdicts(friday_ten, monday) == [(72, "send")]  # 71 hours before the visit, 10:00 on the patient's clock
    assert elapsed(friday_ten, monday.start_at) == timedelta(hours=71)
    assert verdicts(sunday_ten - timedelta(minutes=1), monday, settled={(11, 72)}) == []
    assert verdicts(sunday_ten, monday, settled={(11, 72)}) == [(24, "send")]


def test_day_offsets_keep_the_visits_clock_time_across_the_end_of_summer_time():
    monday = Upcoming(12, local(date(2027, 11, 1), time(9)), BOOKED)
    friday_nine = local(date(2027, 10, 29), time(9))
    assert verdicts(friday_nine - timedelta(minutes=1), monday) == []
    assert verdicts(friday_nine, monday) == [(72, "send")]
    assert elapsed(friday_nine, monday.start_at) == timedelta(hours=73)


def test_hour_offsets_count_elapsed_hours_across_the_switch():
    monday = Upcoming(13, local(date(2027, 3, 29), time(10)), BOOKED)
    six_hours = RULES.__class__((6,), RULES.grace, None, RULES.zone)
    assert verdicts(local(date(2027, 3, 29), time(4)), monday, rules=six_hours) == [(6, "send")]
    # elapsed hours across the night of the switch: 36 h before Monday 10:00 CEST is Saturday 21:00 CET
    long_offset = RULES.__class__((36,), timedelta(days=2), None, RULES.zone)
    assert verdicts(local(date(2027, 3, 27), time(21)) - timedelta(minutes=1), monday, rules=long_offset) == []
    assert verdicts(local(date(2027, 3, 27), time(21)), monday, rules=long_offset) == [(36, "send")]
