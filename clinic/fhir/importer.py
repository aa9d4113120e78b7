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
- `bundle`: a FHIR R4 Bundle (JSON) of Location, Practitioner and PractitionerRole resources: the role
  gives the practitioner's location, specialties (`specialty` codes = specialty keys), working hours
  (`availableTime`; slot length in the `urn:clinic-assistant:slot-minutes` extension, else 30 minutes)
  and absences (`notAvailable`). The file is loaded whole, in one transaction.

After hours and closures, slots are generated from today over SLOT_HORIZON_DAYS (`clinic.slots`).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime, time, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from clinic.db import Database
from clinic.models import Closure, Location, Practitioner, Specialty, WorkingBreak, WorkingHours
from clinic.settings import settings
from clinic.slots import sync_slots

KINDS = ("locations", "practitioners", "hours", "closures", "bundle")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ImportProblem(ValueError):
    pass


Rows = Iterable[tuple[str, dict[str, str]]]  # (where: "line 3" or "entry 2", the row's cells)


def _rows(path: str | Path, required: tuple[str, ...]) -> Iterator[tuple[str, dict[str, str]]]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise ImportProblem(f"{Path(path).name}: missing columns: {', '.join(missing)}")
        for row in reader:
            yield f"line {reader.line_num}", {k: (v or "").strip() for k, v in row.items() if k}


def _list(cell: str) -> list[str]:
    return [part.strip() for part in cell.split(";") if part.strip()]


_NAMES = {Location: "location", Practitioner: "practitioner", Specialty: "specialty"}


def _by_key(session: Session, model, key: str, line: str):
    found = session.scalars(select(model).where(model.key == key)).first()
    if found is None:
        raise ImportProblem(f"{line}: no {_NAMES[model]} {key!r}")
    return found


def _clock(text: str, line: str) -> time:
    try:
        return time.fromisoformat(text)
    except ValueError:
        raise ImportProblem(f"{line}: not a time (HH:MM): {text!r}") from None


def _day(text: str, line: str) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        raise ImportProblem(f"{line}: not a day (YYYY-MM-DD): {text!r}") from None


def _locations(session: Session, rows: Rows) -> int:
    count = 0
    for _, row in rows:
        found = session.scalars(select(Location).where(Location.key == row["key"])).first()
        location = found or Location(key=row["key"], opening_hours={})
        location.name, location.address, location.phone = row["name"], row["address"], row.get("phone") or None
        session.add(location)
        count += 1
    return count


def _practitioners(session: Session, rows: Rows) -> int:
    count = 0
    for line, row in rows:
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


def _hours(session: Session, rows: Rows) -> int:
    blocks: list[tuple[int, WorkingHours]] = []
    for line, row in rows:
        if row["weekday"].lower()[:3] not in WEEKDAYS:
            raise ImportProblem(f"{line}: weekday is one of {', '.join(WEEKDAYS)}")
        start, end = _clock(row["start"], line), _clock(row["end"], line)
        if not (start < end and row["slot_minutes"].isdigit() and int(row["slot_minutes"]) > 0):
            raise ImportProblem(f"{line}: start before end, and slot_minutes a positive number")
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


def _closures(session: Session, rows: Rows) -> int:
    count = 0
    for line, row in rows:
        first, last = _day(row["first_day"], line), _day(row["last_day"], line)
        if first is None or last is None or first > last:
            raise ImportProblem(f"{line}: first_day and last_day, in order")
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


SLOT_MINUTES_EXTENSION = "urn:clinic-assistant:slot-minutes"  # on PractitionerRole.availableTime
DEFAULT_SLOT_MINUTES = 30


def _identifier(resource: dict) -> str:
    values = [i.get("value") for i in resource.get("identifier") or [] if i.get("value")]
    return values[0] if values else str(resource.get("id") or "")


def _codes(concepts: list[dict]) -> list[str]:
    return [c["code"] for concept in concepts or [] for c in concept.get("coding") or [] if c.get("code")]


def bundle_rows(path: str | Path) -> dict[str, list[tuple[str, dict[str, str]]]]:
    """A FHIR R4 Bundle as the CSV loaders' rows: Location; Practitioner; PractitionerRole (location,
    `specialty` codes = specialty keys, `availableTime` = working hours, `notAvailable` = closures).
    Keys are the resources' first identifier values (else their ids).
    """
    from fhir.resources.bundle import Bundle
    from pydantic import ValidationError

    try:
        bundle = Bundle.parse_file(path)
    except ValidationError as error:
        raise ImportProblem(f"{Path(path).name}: not a FHIR R4 Bundle: {error.errors()[0]['msg']}") from None
    entries = [(f"entry {n}", e.fullUrl, e.resource.dict()) for n, e in enumerate(bundle.entry or [], 1) if e.resource]
    keys: dict[str, str] = {}  # "Practitioner/7" or a fullUrl → key
    for _, full_url, resource in entries:
        key = _identifier(resource)
        keys[f"{resource['resourceType']}/{resource.get('id')}"] = key
        if full_url:
            keys[full_url] = key
    rows: dict[str, list] = {"locations": [], "practitioners": [], "hours": [], "closures": []}
    people = {}
    for where, _, r in entries:
        if r["resourceType"] == "Location":
            telecom = [t["value"] for t in r.get("telecom") or [] if t.get("system") == "phone"]
            address = r.get("address") or {}
            rows["locations"].append((where, {"key": _identifier(r), "name": r.get("name") or _identifier(r),
                                              "address": address.get("text") or ", ".join(address.get("line") or []),
                                              "phone": telecom[0] if telecom else ""}))
        elif r["resourceType"] == "Practitioner":
            name = (r.get("name") or [{}])[0]
            people[_identifier(r)] = {"key": _identifier(r), "title": " ".join(name.get("prefix") or []),
                                      "first_name": " ".join(name.get("given") or []),
                                      "last_name": name.get("family") or "",
                                      "languages": ";".join(_codes(r.get("communication")))}
    for where, _, r in entries:
        if r["resourceType"] != "PractitionerRole":
            continue
        person = keys.get((r.get("practitioner") or {}).get("reference", ""))
        place = keys.get(((r.get("location") or [{}])[0]).get("reference", ""))
        if person not in people or place is None:
            raise ImportProblem(f"{where}: a PractitionerRole names a Practitioner and a Location of the bundle")
        rows["practitioners"].append((where, {**people[person], "location": place,
                                              "specialties": ";".join(_codes(r.get("specialty")))}))
        for available in r.get("availableTime") or []:
            minutes = next((str(x.get("valueInteger")) for x in available.get("extension") or []
                            if x.get("url") == SLOT_MINUTES_EXTENSION), str(DEFAULT_SLOT_MINUTES))
            for day in available.get("daysOfWeek") or []:
                rows["hours"].append((where, {"practitioner": person, "location": place, "weekday": day,
                                              "start": str(available.get("availableStartTime") or ""),
                                              "end": str(available.get("availableEndTime") or ""),
                                              "slot_minutes": minutes}))
        for away in r.get("notAvailable") or []:
            during = away.get("during") or {}
            rows["closures"].append((where, {"first_day": str(during.get("start") or "")[:10],
                                             "last_day": str(during.get("end") or during.get("start") or "")[:10],
                                             "reason": away.get("description") or "", "practitioner": person}))
    return rows


REQUIRED = {
    "locations": ("key", "name", "address"),
    "practitioners": ("key", "first_name", "last_name", "location", "specialties"),
    "hours": ("practitioner", "location", "weekday", "start", "end", "slot_minutes"),
    "closures": ("first_day", "last_day"),
}
LOADERS: dict[str, Callable[[Session, Rows], int]] = {
    "locations": _locations, "practitioners": _practitioners, "hours": _hours, "closures": _closures,
}


def load(db: Database, kind: str, path: str, today: date | None = None) -> str:
    """Load one file; a one-line summary of what was done."""
    if kind not in KINDS:
        raise ImportProblem(f"what to import: one of {', '.join(KINDS)}")
    try:
        with db.transaction() as session:
            if kind == "bundle":
                counts = [LOADERS[part](session, rows) for part, rows in bundle_rows(path).items()]
                count = sum(counts)
            else:
                count = LOADERS[kind](session, _rows(path, REQUIRED[kind]))
    except OSError as error:
        raise ImportProblem(f"{path}: {error.strerror}") from None
    summary = f"{count} {kind} loaded"
    if kind in ("hours", "closures", "bundle"):
        zone = settings().zone
        today = today or datetime.now(zone).date()
        synced = sync_slots(db, today, today + timedelta(days=settings().slot_horizon_days - 1), zone)
        summary += f"; slots: {synced.added} added, {synced.withdrawn} withdrawn"
    return summary
