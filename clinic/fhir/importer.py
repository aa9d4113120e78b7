"""Load a clinic's calendar from CSV files, so it can start without typing it in (`clinic import`).

One file per kind, UTF-8 with a header row; lists inside a cell are `;`-separated; each file is loaded
in one transaction (a bad line refuses the whole file, naming the line). Idempotent: loading a file
again changes nothing.

- `locations`: key, name, address, phone
- `practitioners`: key, title, first_name, last_name, location (key), specialties (keys), languages
- `hours`: practitioner, location, weekday (mon..sun), start, end (HH:MM, clinic time), slot_minutes,
  breaks (`13:00-14:00;...`), valid_from, valid_until (YYYY-MM-DD, may be empty). The file replaces
  the working hours of every practitioner it names.
- `closures`: first_day, last_day, reason, practitioner (key, may be empty), location (key, may be empty)

After hours and closures, slots are generated from today over SLOT_HORIZON_DAYS (`clinic.slots`).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from datetime import date, datetime, time, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from clinic.db import Database
from clinic.models import Closure, Location, Practitioner, Specialty, WorkingBreak, WorkingHours
from clinic.settings import settings
from clinic.slots import sync_slots

KINDS = ("locations", "practitioners", "hours", "closures")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ImportProblem(ValueError):
    pass


def _rows(path: str | Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise ImportProblem(f"{Path(path).name}: missing columns: {', '.join(missing)}")
        for row in reader:
            yield reader.line_num, {k: (v or "").strip() for k, v in row.items() if k}


def _list(cell: str) -> list[str]:
    return [part.strip() for part in cell.split(";") if part.strip()]


_NAMES = {Location: "location", Practitioner: "practitioner", Specialty: "specialty"}


def _by_key(session: Session, model, key: str, line: int):
    found = session.scalars(select(model).where(model.key == key)).first()
    if found is None:
        raise ImportProblem(f"line {line}: no {_NAMES[model]} {key!r}")
    return found


def _clock(text: str, line: int) -> time:
    try:
        return time.fromisoformat(text)
    except ValueError:
        raise ImportProblem(f"line {line}: not a time (HH:MM): {text!r}") from None


def _day(text: str, line: int) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        raise ImportProblem(f"line {line}: not a day (YYYY-MM-DD): {text!r}") from None


def _locations(session: Session, path: str) -> int:
    count = 0
    for _, row in _rows(path, ("key", "name", "address")):
        found = session.scalars(select(Location).where(Location.key == row["key"])).first()
        location = found or Location(key=row["key"], opening_hours={})
        location.name, location.address, location.phone = row["name"], row["address"], row.get("phone") or None
        session.add(location)
        count += 1
    return count


def _practitioners(session: Session, path: str) -> int:
    count = 0
    for line, row in _rows(path, ("key", "first_name", "last_name", "location", "specialties")):
        found = session.scalars(select(Practitioner).where(Practitioner.key == row["key"])).first()
        practitioner = found or Practitioner(key=row["key"])
        practitioner.title = row.get("title", "")
        practitioner.first_name, practitioner.last_name = row["first_name"], row["last_name"]
        practitioner.location_id = _by_key(session, Location, row["location"], line).id
        practitioner.specialties = [_by_key(session, Specialty, key, line) for key in _list(row["specialties"])]
        practitioner.languages = _list(row.get("languages", "")) or [settings().default_language]
        practitioner.active = True
        session.add(practitioner)
        session.flush()
        count += 1
    return count


def _hours(session: Session, path: str) -> int:
    blocks: list[tuple[int, WorkingHours]] = []
    for line, row in _rows(path, ("practitioner", "location", "weekday", "start", "end", "slot_minutes")):
        if row["weekday"].lower()[:3] not in WEEKDAYS:
            raise ImportProblem(f"line {line}: weekday is one of {', '.join(WEEKDAYS)}")
        start, end = _clock(row["start"], line), _clock(row["end"], line)
        if not (start < end and row["slot_minutes"].isdigit() and int(row["slot_minutes"]) > 0):
            raise ImportProblem(f"line {line}: start before end, and slot_minutes a positive number")
        block = WorkingHours(
            practitioner_id=_by_key(session, Practitioner, row["practitioner"], line).id,
            location_id=_by_key(session, Location, row["location"], line).id,
            weekday=WEEKDAYS.index(row["weekday"].lower()[:3]), start_time=start, end_time=end,
            slot_minutes=int(row["slot_minutes"]), valid_from=_day(row.get("valid_from", ""), line),
            valid_until=_day(row.get("valid_until", ""), line),
        )
        for pause in _list(row.get("breaks", "")):
            first, _, last = pause.partition("-")
            block.breaks.append(WorkingBreak(start_time=_clock(first, line), end_time=_clock(last, line)))
        blocks.append((line, block))
    for practitioner_id in {b.practitioner_id for _, b in blocks}:
        for old in session.scalars(select(WorkingHours).where(WorkingHours.practitioner_id == practitioner_id)):
            session.delete(old)
    session.flush()
    session.add_all(b for _, b in blocks)
    return len(blocks)


def _closures(session: Session, path: str) -> int:
    count = 0
    for line, row in _rows(path, ("first_day", "last_day")):
        first, last = _day(row["first_day"], line), _day(row["last_day"], line)
        if first is None or last is None or first > last:
            raise ImportProblem(f"line {line}: first_day and last_day, in order")
        key = {
            "first_day": first, "last_day": last,
            "practitioner_id": _by_key(session, Practitioner, row["practitioner"], line).id
            if row.get("practitioner") else None,
            "location_id": _by_key(session, Location, row["location"], line).id if row.get("location") else None,
        }
        if session.scalars(select(Closure).filter_by(**key)).first() is None:
            session.add(Closure(**key, reason=row.get("reason", "")[:200]))
        count += 1
    return count


LOADERS: dict[str, Callable[[Session, str], int]] = {
    "locations": _locations, "practitioners": _practitioners, "hours": _hours, "closures": _closures,
}


def load(db: Database, kind: str, path: str, today: date | None = None) -> str:
    """Load one file; a one-line summary of what was done."""
    if kind not in LOADERS:
        raise ImportProblem(f"what to import: one of {', '.join(KINDS)}")
    try:
        with db.transaction() as session:
            count = LOADERS[kind](session, path)
    except OSError as error:
        raise ImportProblem(f"{path}: {error.strerror}") from None
    summary = f"{count} {kind} loaded"
    if kind in ("hours", "closures"):
        zone = settings().zone
        today = today or datetime.now(zone).date()
        synced = sync_slots(db, today, today + timedelta(days=settings().slot_horizon_days - 1), zone)
        summary += f"; slots: {synced.added} added, {synced.withdrawn} withdrawn"
    return summary
