"""Turning core data into response variables: dates in the patient's language, names, buttons."""

from __future__ import annotations

from datetime import date, datetime

from babel.dates import format_date, format_time

from clinic.catalog import SpecialtyInfo
from clinic.scheduling import AppointmentView, FreeSlot
from clinic.settings import settings


def when(moment: datetime, lang: str) -> dict[str, str]:
    """{"date": "martedì 1 dicembre", "time": "09:30"} in the clinic's zone."""
    local = moment.astimezone(settings().zone)
    return {"date": long_date(local.date(), lang), "time": format_time(local, "HH:mm", locale=lang)}


def long_date(day: date, lang: str) -> str:
    """A local calendar day as patients read it: "martedì 1 dicembre"."""
    return format_date(day, "EEEE d MMMM", locale=lang)


def short_when(moment: datetime, lang: str) -> dict[str, str]:
    """A compact date for button titles: "mar 1 dic"."""
    local = moment.astimezone(settings().zone)
    return {"date": format_date(local, "EEE d MMM", locale=lang), "time": format_time(local, "HH:mm", locale=lang)}


def specialty_name(key: str | None, lang: str, specialties: dict[str, SpecialtyInfo]) -> str:
    return specialties[key].name(lang) if key in specialties else ""


def appointment_values(a: AppointmentView, lang: str, specialties: dict[str, SpecialtyInfo]) -> dict[str, str]:
    return {
        **when(a.start_at, lang),
        "patient": a.patient_name,
        "practitioner": a.practitioner_name,
        "specialty": specialty_name(a.specialty, lang, specialties),
        "location": a.location_name,
        "address": a.location_address,
    }


def slot_values(s: FreeSlot, lang: str) -> dict[str, str]:
    return {
        **when(s.start_at, lang),
        "practitioner": s.practitioner_name,
        "location": s.location_name,
        "address": s.location_address,
    }
