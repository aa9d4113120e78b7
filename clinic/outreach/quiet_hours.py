"""Quiet hours: clinic hours when no outreach message goes out (default 21:00-08:00).

A message that falls due in them is deferred to their end, never dropped.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo


def is_quiet(moment: datetime, quiet: tuple[time, time] | None, zone: ZoneInfo) -> bool:
    """True when `moment` falls in the quiet span (which may run across midnight)."""
    if quiet is None:
        return False
    start, end = quiet
    local = moment.astimezone(zone).time()
    if start <= end:
        return start <= local < end
    return local >= start or local < end


def next_allowed(moment: datetime, quiet: tuple[time, time] | None, zone: ZoneInfo) -> datetime:
    """`moment` itself outside quiet hours, else the end of the quiet span it falls in (clinic time)."""
    if not is_quiet(moment, quiet, zone):
        return moment
    assert quiet is not None
    local = moment.astimezone(zone)
    day = local.date() if local.time() < quiet[1] else local.date() + timedelta(days=1)
    # Through UTC, so a quiet span ending at a DST change still lands on a real instant.
    return datetime.combine(day, quiet[1], tzinfo=zone).astimezone(ZoneInfo("UTC"))


def allowed_time(start: datetime, end: datetime, quiet: tuple[time, time] | None, zone: ZoneInfo) -> timedelta:
    """How much of [start, end) lies outside quiet hours: a reminder's lateness, so that quiet hours
    defer it without eating its grace.
    """
    if quiet is None or end <= start:
        return max(end - start, timedelta(0))
    total, moment = timedelta(0), start
    while moment < end:
        if is_quiet(moment, quiet, zone):
            moment = next_allowed(moment, quiet, zone)
            continue
        stop = min(_next_quiet_start(moment, quiet, zone), end)
        total += stop - moment
        moment = stop
    return total


def _next_quiet_start(moment: datetime, quiet: tuple[time, time], zone: ZoneInfo) -> datetime:
    local = moment.astimezone(zone)
    day = local.date() if local.time() < quiet[0] else local.date() + timedelta(days=1)
    return datetime.combine(day, quiet[0], tzinfo=zone).astimezone(ZoneInfo("UTC"))


def after_allowed(start: datetime, duration: timedelta, quiet: tuple[time, time] | None, zone: ZoneInfo) -> datetime:
    """The moment `duration` of time outside quiet hours has passed since `start`: an offer made at
    20:30 that holds two hours lasts until 09:30, not while the patient sleeps.
    """
    moment, remaining = start, duration
    while quiet is not None and remaining > timedelta(0):
        if is_quiet(moment, quiet, zone):
            moment = next_allowed(moment, quiet, zone)
            continue
        stop = min(_next_quiet_start(moment, quiet, zone), moment + remaining)
        remaining -= stop - moment
        moment = stop
    return moment + remaining if quiet is None else moment
