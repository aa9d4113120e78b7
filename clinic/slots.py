"""Bookable slots, generated from weekly working hours minus breaks and closures.

Working hours are local wall-clock times: a 09:00 block stays 09:00 in the clinic across DST
changes, so its UTC instant moves. Slots are materialised rows so a booking can point at one and
the database can forbid two bookings of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from clinic.db import Database
from clinic.models import Appointment, Closure, Slot, WorkingHours


@dataclass(frozen=True)
class PlannedSlot:
    practitioner_id: int
    location_id: int
    start_at: datetime  # UTC
    end_at: datetime


@dataclass(frozen=True)
class SyncResult:
    added: int
    withdrawn: int


def local_instant(day: date, wall: time, zone: ZoneInfo) -> datetime | None:
    """The UTC instant of a local wall-clock time, or None when DST skips that time."""
    local = datetime.combine(day, wall, tzinfo=zone)
    utc = local.astimezone(timezone.utc)
    if utc.astimezone(zone).replace(tzinfo=None) != local.replace(tzinfo=None):
        return None  # e.g. 02:30 on the night clocks go forward
    return utc


def _days(first: date, last: date) -> Iterator[date]:
    for offset in range((last - first).days + 1):
        yield first + timedelta(days=offset)


def _closed(day: date, block: WorkingHours, closures: Iterable[Closure]) -> bool:
    return any(
        c.first_day <= day <= c.last_day
        and c.location_id in (None, block.location_id)
        and c.practitioner_id in (None, block.practitioner_id)
        for c in closures
    )


def _block_slots(block: WorkingHours, day: date, zone: ZoneInfo) -> Iterator[PlannedSlot]:
    length = timedelta(minutes=block.slot_minutes)
    start = datetime.combine(day, block.start_time)
    end = datetime.combine(day, block.end_time)
    breaks = [(datetime.combine(day, b.start_time), datetime.combine(day, b.end_time)) for b in block.breaks]
    while start + length <= end:
        pause = next(((b0, b1) for b0, b1 in breaks if start < b1 and b0 < start + length), None)
        if pause:
            start = pause[1]  # resume straight after the break
            continue
        start_at = local_instant(day, start.time(), zone)
        end_at = local_instant(day, (start + length).time(), zone)
        # Skip times DST removes, and slots it would stretch or shrink (the night clocks change).
        if start_at and end_at and end_at - start_at == length:
            yield PlannedSlot(block.practitioner_id, block.location_id, start_at, end_at)
        start += length


def plan_slots(
    blocks: Iterable[WorkingHours], closures: Iterable[Closure], first: date, last: date, zone: ZoneInfo
) -> set[PlannedSlot]:
    """Every slot the working hours give between two local days (inclusive)."""
    blocks, closures = list(blocks), list(closures)
    planned: set[PlannedSlot] = set()
    for day in _days(first, last):
        for block in blocks:
            if block.weekday != day.weekday() or _closed(day, block, closures):
                continue
            if (block.valid_from and day < block.valid_from) or (block.valid_until and day > block.valid_until):
                continue
            planned.update(_block_slots(block, day, zone))
    return planned


def sync_slots(db: Database, first: date, last: date, zone: ZoneInfo) -> SyncResult:
    """Make the slot table match the working hours and closures between two local days.

    Idempotent. New slots are added; slots no longer planned are deleted, or only withdrawn from
    booking when an appointment (even a cancelled one) still refers to them. Existing bookings are
    never touched: staff move those.
    """
    range_start = local_instant(first, time(0), zone) or datetime.combine(first, time(0), tzinfo=zone)
    range_end = local_instant(last + timedelta(days=1), time(0), zone) or datetime.combine(
        last + timedelta(days=1), time(0), tzinfo=zone
    )
    with db.transaction() as session:
        blocks = session.scalars(select(WorkingHours).options(selectinload(WorkingHours.breaks))).all()
        closures = session.scalars(
            select(Closure).where(Closure.last_day >= first, Closure.first_day <= last)
        ).all()
        planned = {(p.practitioner_id, p.start_at): p for p in plan_slots(blocks, closures, first, last, zone)}
        existing = {
            (s.practitioner_id, s.start_at): s
            for s in session.scalars(select(Slot).where(Slot.start_at >= range_start, Slot.start_at < range_end))
        }
        added = [Slot(**vars(p)) for key, p in sorted(planned.items()) if key not in existing]
        session.add_all(added)
        obsolete = [
            s for key, s in existing.items()
            if key not in planned or (planned[key].end_at, planned[key].location_id) != (s.end_at, s.location_id)
        ]
        referenced = set(
            session.scalars(select(Appointment.slot_id).where(Appointment.slot_id.in_([s.id for s in obsolete])))
        )
        for slot in existing.values():
            key = (slot.practitioner_id, slot.start_at)
            if slot not in obsolete:
                slot.bookable = True
            elif slot.id in referenced:
                slot.bookable = False  # an appointment points at it: withdraw, keep the row
            elif key in planned:
                slot.end_at, slot.location_id, slot.bookable = planned[key].end_at, planned[key].location_id, True
            else:
                session.delete(slot)
    return SyncResult(added=len(added), withdrawn=len(obsolete))
