"""A clinic's calendar loaded from CSV files: practitioners, hours and closures become bookable slots."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from clinic import cli, scheduling
from clinic.db import database
from clinic.fhir import importer
from clinic.models import Practitioner, Slot
from clinic.settings import settings
from tests.conftest import DEMO_NOW, DEMO_TODAY

LOCATIONS = "key,name,address,phone\nduomo,Sede Duomo,Piazza Duomo 1 Milano,+39 02 1\n"
PRACTITIONERS = ("key,title,first_name,last_name,location,specialties,languages\n"
                 "neri,Dott.,Paolo,Neri,duomo,cardiology;general_practice,it;en\n")
HOURS = ("practitioner,location,weekday,start,end,slot_minutes,breaks,valid_from,valid_until\n"
         "neri,duomo,mon,09:00,12:00,30,10:30-11:00,,\n"
         "neri,duomo,tue,14:00,16:00,20,,,\n")
CLOSURES = "first_day,last_day,reason,practitioner,location\n{day},{day},congress,neri,\n"


def _write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def _neri_slots(db) -> list:
    with db.reading() as s:
        neri = s.scalar(select(Practitioner.id).where(Practitioner.key == "neri"))
    query = scheduling.SlotQuery(*scheduling.day_window(DEMO_TODAY, DEMO_TODAY + timedelta(days=13)),
                                 practitioner_id=neri)
    return scheduling.free_slots(db, query, now=DEMO_NOW, limit=500)


def test_csv_files_make_a_bookable_calendar_and_loading_again_changes_nothing(demo_db, tmp_path):
    files = [("locations", _write(tmp_path, "l.csv", LOCATIONS)),
             ("practitioners", _write(tmp_path, "p.csv", PRACTITIONERS)),
             ("hours", _write(tmp_path, "h.csv", HOURS)),
             ("closures", _write(tmp_path, "c.csv", CLOSURES.format(day=DEMO_TODAY + timedelta(days=8))))]
    for kind, path in files:
        importer.load(demo_db, kind, path, today=DEMO_TODAY)

    slots = _neri_slots(demo_db)
    local = [s.start_at.astimezone(settings().zone) for s in slots]
    assert {t.strftime("%a") for t in local} == {"Mon", "Tue"}
    monday = sorted(t.strftime("%H:%M") for t in local if t.date() == DEMO_TODAY + timedelta(days=7))
    assert monday == ["09:00", "09:30", "10:00", "11:00", "11:30"]  # the break is kept free
    assert [t for t in local if t.date() == DEMO_TODAY + timedelta(days=1)]
    assert not [t for t in local if t.date() == DEMO_TODAY + timedelta(days=8)]  # the congress
    with demo_db.reading() as s:
        before = s.scalar(select(func.count()).select_from(Slot))

    for kind, path in files:
        importer.load(demo_db, kind, path, today=DEMO_TODAY)

    with demo_db.reading() as s:
        assert s.scalar(select(func.count()).select_from(Slot)) == before
    assert len(_neri_slots(demo_db)) == len(slots)


def test_a_bad_line_refuses_the_file_naming_the_line(demo_db, tmp_path, monkeypatch, capsys):
    bad = _write(tmp_path, "p.csv", PRACTITIONERS.replace("cardiology;", "astrology;").replace(",duomo,", ",centro,"))
    with pytest.raises(importer.ImportProblem, match="line 2: no specialty 'astrology'"):
        importer.load(demo_db, "practitioners", bad)
    with demo_db.reading() as s:
        assert s.scalar(select(Practitioner.id).where(Practitioner.key == "neri")) is None

    monkeypatch.setenv("DATABASE_URL", demo_db.url)
    settings.cache_clear()
    database.cache_clear()
    assert cli.main(["import", "practitioners", bad]) == 1
    assert "line 2" in capsys.readouterr().err
    database().dispose()
    database.cache_clear()


BUNDLE = {
    "resourceType": "Bundle", "type": "collection",
    "entry": [
        {"fullUrl": "urn:uuid:loc-1", "resource": {
            "resourceType": "Location", "identifier": [{"value": "duomo"}], "name": "Sede Duomo",
            "address": {"text": "Piazza Duomo 1, Milano"}, "telecom": [{"system": "phone", "value": "+39 02 1"}]}},
        {"fullUrl": "urn:uuid:doc-1", "resource": {
            "resourceType": "Practitioner", "identifier": [{"value": "neri"}],
            "name": [{"family": "Neri", "given": ["Paolo"], "prefix": ["Dott."]}]}},
        {"resource": {
            "resourceType": "PractitionerRole", "practitioner": {"reference": "urn:uuid:doc-1"},
            "location": [{"reference": "urn:uuid:loc-1"}],
            "specialty": [{"coding": [{"system": "urn:clinic-assistant:specialty", "code": "cardiology"}]}],
            "availableTime": [{"daysOfWeek": ["mon", "tue"], "availableStartTime": "09:00:00",
                               "availableEndTime": "11:00:00",
                               "extension": [{"url": "urn:clinic-assistant:slot-minutes", "valueInteger": 20}]}],
            "notAvailable": [{"description": "congress", "during": {"start": "{away}", "end": "{away}"}}]}},
    ],
}


def test_a_fhir_bundle_loads_practitioner_role_hours_and_absences(demo_db, tmp_path):
    import json

    away = (DEMO_TODAY + timedelta(days=8)).isoformat()
    path = _write(tmp_path, "bundle.json", json.dumps(BUNDLE).replace("{away}", away))

    summary = importer.load(demo_db, "bundle", path, today=DEMO_TODAY)

    assert "slots:" in summary
    with demo_db.reading() as s:
        neri = s.scalars(select(Practitioner).where(Practitioner.key == "neri")).one()
        assert ([sp.key for sp in neri.specialties], neri.location.key, neri.title) == (["cardiology"], "duomo",
                                                                                       "Dott.")
    local = [s.start_at.astimezone(settings().zone) for s in _neri_slots(demo_db)]
    monday = sorted(t.strftime("%H:%M") for t in local if t.date() == DEMO_TODAY + timedelta(days=7))
    assert monday == ["09:00", "09:20", "09:40", "10:00", "10:20", "10:40"]
    assert not [t for t in local if t.date().isoformat() == away]
    assert importer.load(demo_db, "bundle", path, today=DEMO_TODAY).endswith("slots: 0 added, 0 withdrawn")
