"""Patients book, list, move and cancel visits by chatting with the running stack."""

import re

from clinic import scheduling
from clinic.db import Database
from clinic.models import AppointmentStatus

GIOVANNI, EMILY = "393330000001", "447700900001"


def buttons(replies):
    return [b for r in replies for b in r.get("buttons", [])]


def texts(replies):
    return " ".join(r.get("text", "") for r in replies)


def slot_choice(replies, index=0):
    return [b for b in buttons(replies) if "slot_id" in b["payload"]][index]


def test_a_patient_books_a_cardiology_visit_in_italian(stack):
    db = Database(stack.database_url)
    replies = stack.say(GIOVANNI, "vorrei una visita dal cardiologo lunedì mattina")
    choice = slot_choice(replies)
    assert re.match(r"lun \d+ \w+ \d\d:\d\d · Dott", choice["title"]), choice
    replies = stack.say(GIOVANNI, choice["payload"])
    assert "Confermi?" in texts(replies) and "Giovanni Verdi" in texts(replies)
    replies = stack.say(GIOVANNI, "sì")
    assert "Prenotato" in texts(replies)
    [appointment] = scheduling.upcoming_appointments(db, [1])
    assert appointment.specialty == "cardiology" and appointment.status is AppointmentStatus.booked
    assert f'"{appointment.slot_id}"' in choice["payload"]


def test_saying_no_at_the_summary_books_nothing(stack):
    db = Database(stack.database_url)
    before = scheduling.upcoming_appointments(db, [4])
    replies = stack.say(EMILY, "I'd like to see a dermatologist next week")
    replies = stack.say(EMILY, slot_choice(replies)["payload"])
    assert "Shall I book it?" in texts(replies)
    replies = stack.say(EMILY, "no")
    assert "I haven't booked anything" in texts(replies)
    assert scheduling.upcoming_appointments(db, [4]) == before
