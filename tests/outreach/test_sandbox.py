"""The reminder as the patient's phone gets it: through the client's outbox to the sandbox (real HTTP),
which checks the template's name, language and parameters as Meta would.
"""

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from clinic.models import Contact
from clinic.outreach.reminders import recipient, send_due
from clinic.whatsapp.client import WhatsAppClient
from tests.outreach.conftest import EMILY, GIOVANNI, RULES, book


def wa_id(db, patient_id: int) -> str:
    with db.reading() as session:
        return recipient(session, patient_id).wa_id


@pytest.mark.parametrize(("patient", "expected"), [
    (GIOVANNI, ("Promemoria per Giovanni: visita venerdì 5 marzo alle {time} con {practitioner}, presso {location}. "
                "Nessuna preparazione particolare. Puoi confermare, spostare o disdire qui sotto.",
                ["Confermo", "Sposta", "Annulla"])),
    (EMILY, ("Reminder for Emily: visit on Friday 5 March at {time} with {practitioner}, at {location}. "
             "No special preparation needed. You can confirm, reschedule or cancel below.",
             ["Confirm", "Reschedule", "Cancel"])),
])
async def test_the_reminder_reaches_the_phone_in_the_patients_language(demo_db, sandbox, patient, expected):
    visit = book(demo_db, patient_id=patient, day=date(2027, 3, 5))
    phone = wa_id(demo_db, patient)
    sandbox.close_window(phone)  # a template goes out even with the 24-hour window closed
    with demo_db.reading() as session:
        assert session.scalars(select(Contact.last_inbound_at).where(Contact.wa_id == phone)).one() is None
    client = WhatsAppClient(demo_db, sandbox.config, default_language="it")
    try:
        assert send_due(demo_db, client, visit.start_at - timedelta(hours=72), RULES).sent == 1
        assert await client.deliver_due() == 1
    finally:
        await client.close()
    (message,) = sandbox.received(phone)
    text, titles = expected
    local = visit.start_at.astimezone(RULES.zone)
    assert message["view"]["body"] == text.format(time=local.strftime("%H:%M"), practitioner=visit.practitioner_name,
                                                  location=f"{visit.location_name}, {visit.location_address}")
    assert [b["text"] for b in message["view"]["buttons"]] == titles
    assert [b["payload"] for b in message["view"]["buttons"]] == [
        f'/{intent}{{"appointment_id": "{visit.id}"}}'
        for intent in ("confirm_appointment", "reschedule_appointment", "cancel_appointment")]
    assert message["request"]["biz_opaque_callback_data"].startswith("reminder:")
