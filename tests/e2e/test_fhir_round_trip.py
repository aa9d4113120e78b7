"""Integration (issue 9), the round trip across systems: an EHR books over FHIR, the patient moves the
visit on WhatsApp (the sandbox, the real Rasa stack), and the EHR sees the move, the old slot free again.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

from clinic.db import Database
from clinic.outreach import reminders
from clinic.patients import register_patient
from tests.e2e.test_whatsapp_booking import Chat, consents, options
from tests.fhir.conftest import start_fhir, stop

PHONE = "393470009009"  # no other e2e test uses it (they share the stack)
MONTHS = ("gennaio", "febbraio", "marzo", "aprile", "maggio", "giugno", "luglio", "agosto", "settembre", "ottobre",
          "novembre", "dicembre")


def test_an_ehr_booking_moved_by_the_patient_on_whatsapp_is_seen_by_the_ehr(whatsapp, stack, tmp_path):
    db = Database(stack.database_url)
    server, process = start_fhir(db, tmp_path / "fhir.log")
    try:
        ehr = server.client("round-trip-ehr")
        chat = Chat(whatsapp, phone=PHONE, name="Sara")
        patient = register_patient(db, wa_id=PHONE, first_name="Sara", last_name="Fabbri",
                                   date_of_birth=date(1985, 2, 3), language="it")
        consents(db, chat)
        first_day = (datetime.now(timezone.utc) + timedelta(days=4)).date()
        free = ehr.search("Slot", [("status", "free"), ("service-type", "cardiology"),
                                   ("start", f"ge{first_day.isoformat()}"), ("_count", "100")]).json()
        slots = [e["resource"] for e in free["entry"]]
        booked_slot = slots[0]
        other_day = next(date.fromisoformat(s["start"][:10]) for s in slots  # the same doctor, another day
                         if s["schedule"] == booked_slot["schedule"] and s["start"][:10] != booked_slot["start"][:10])

        answer = ehr.post("Appointment", {
            "resourceType": "Appointment", "status": "booked", "slot": [{"reference": f"Slot/{booked_slot['id']}"}],
            "participant": [{"actor": {"reference": f"Patient/{patient}"}, "status": "accepted"}]})
        assert answer.status_code == 201, answer.text
        booked = answer.json()

        # The patient moves it on WhatsApp: the reminder's "Sposta" payload, a day, a slot, yes.
        whatsapp.tap_quick_reply(PHONE, reminders.reply_payloads(int(booked["id"]))[1], "Sposta")
        chat.wait_for("Per quando")
        chat.says(f"il {other_day.day} {MONTHS[other_day.month - 1]}")
        offered = [o for o in options(chat.wait_for("slot_id")) if "slot_id" in o["id"]]
        chat.taps(offered[0])
        chosen = json.loads(offered[0]["id"][offered[0]["id"].index("{"):])["slot_id"]
        [yes] = [o for o in options(chat.wait_for("Confermi")) if o["id"] == "/affirm"]
        chat.taps(yes)
        chat.wait_for("Spostato")

        seen = ehr.search("Appointment", [("patient", f"Patient/{patient}")]).json()
        assert seen["total"] == 2
        by_id = {e["resource"]["id"]: e["resource"] for e in seen["entry"]}
        old = by_id.pop(booked["id"])
        (new,) = by_id.values()
        assert (old["id"], old["status"], old["cancelationReason"]["text"]) == (booked["id"], "cancelled",
                                                                                "rescheduled")
        assert (new["status"], new["slot"]) == ("booked", [{"reference": f"Slot/{chosen}"}])
        assert new["start"] > booked["start"] and new["start"][:10] >= other_day.isoformat()
        assert ehr.get(f"Slot/{booked_slot['id']}").json()["status"] == "free"
        assert ehr.get(new["slot"][0]["reference"]).json()["status"] == "busy"
    finally:
        stop(process)
