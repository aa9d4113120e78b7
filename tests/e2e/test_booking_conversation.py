"""Patients book, list, move and cancel visits by chatting with the running stack."""

import re
from datetime import timedelta

from clinic import consent, patients, scheduling
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


def test_a_new_number_consents_registers_and_then_books(stack):
    new = "393331234567"
    replies = stack.say(new, "buongiorno, vorrei prenotare degli esami del sangue")
    assert "Informativa privacy" in texts(replies) and "nome e cognome" not in texts(replies)  # consent first
    assert [b["title"] for b in buttons(replies)] == [
        "Accetto tutto", "Appuntamenti e referti", "Solo appuntamenti", "Non accetto"]
    assert "ho registrato le tue scelte" in texts(stack.say(new, buttons(replies)[2]["payload"]))
    replies = stack.say(new, "vorrei prenotare degli esami del sangue")
    assert "nome e cognome" in texts(replies)
    replies = stack.say(new, "Anna Maria De Luca")
    assert "data di nascita" in texts(replies)
    replies = stack.say(new, "31/02/1990")
    assert "non sembra una data di nascita valida" in texts(replies).lower()
    replies = stack.say(new, "12/04/1990")
    assert "ti ho registrato" in texts(replies)
    if not any("slot_id" in b["payload"] for b in buttons(replies)):  # asked for the day first
        replies = stack.say(new, "dopodomani mattina")
    replies = stack.say(new, slot_choice(replies)["payload"])
    assert "Anna Maria De Luca" in texts(replies)
    assert "Prenotato" in texts(stack.say(new, "sì"))


def test_a_parent_books_the_paediatrician_for_her_son(stack):
    db = Database(stack.database_url)
    replies = stack.say("393330000002", "vorrei prenotare il pediatra per mio figlio lunedì pomeriggio")
    replies = stack.say("393330000002", slot_choice(replies)["payload"])
    assert "per Tommaso Neri" in texts(replies)
    stack.say("393330000002", "sì grazie")
    [appointment] = scheduling.upcoming_appointments(db, [3])
    assert appointment.specialty == "paediatrics"


def test_a_carer_cancels_her_mothers_visit_after_confirming(stack):
    db = Database(stack.database_url)
    soon = scheduling.earliest_bookable().date()
    first, last = scheduling.day_window(soon + timedelta(days=3), soon + timedelta(days=10))
    slot = scheduling.free_slots(db, scheduling.SlotQuery(first, last, specialty="ophthalmology"))[0]
    booked = scheduling.book(db, patient_id=5, slot_id=slot.id, actor="staff:test")
    replies = stack.say("393330000003", "devo disdire la visita di mia madre")
    assert "Vuoi disdire" in texts(replies) and "Rosa Gallo" in texts(replies)
    replies = stack.say("393330000003", "sì")
    assert "disdetto" in texts(replies)
    assert scheduling.appointment(db, booked.id).status is AppointmentStatus.cancelled


def test_opening_hours_come_from_the_clinic_database(stack):
    replies = stack.say("447700900001", "what are your opening hours?")
    assert "Mon–Fri 08:00–19:00" in texts(replies)


def test_stop_in_the_middle_of_a_booking_withdraws_consent_and_the_next_request_asks_again(stack):
    db = Database(stack.database_url)
    sender = "393330000001"  # Giovanni, who consented (demo seed)
    replies = stack.say(sender, "vorrei prenotare una visita")
    assert "Informativa" not in texts(replies)
    replies = stack.say(sender, "STOP")
    assert "non ti invieremo più messaggi" in texts(replies)
    contact_id = patients.contact_id(db, sender)
    assert not any(consent.allows(db, contact_id, p) for p in consent.PURPOSES)
    replies = stack.say(sender, "vorrei prenotare una visita")
    assert "Informativa privacy" in texts(replies)
    stack.say(sender, buttons(replies)[0]["payload"])  # accepts everything again
    assert consent.state(db, contact_id).granted == set(consent.PURPOSES)
