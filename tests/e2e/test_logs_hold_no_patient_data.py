"""Silent in logs: a demo patient books on WhatsApp (through the ingest, as `make run` delivers),
asks for a nurse, a nurse answers and hands back from the inbox; then every line the clinic's
processes logged (Rasa, the action server, the ingest, the inbox) is searched for the demo patients'
names, dates of birth and phone numbers and for every text the patient or the nurse wrote.
"""

from __future__ import annotations

import re
from datetime import date

import yaml

from clinic import handoff
from clinic.db import Database
from clinic.settings import PROJECT_ROOT
from tests.e2e.test_whatsapp_booking import Chat, contact, options, slot_options
from tests.inbox.conftest import PASSWORD, InboxClient, add_nurse
from tests.whatsapp_sandbox import wait_until

REPLY_SECONDS = 90
LOGS = ("stack*/rasa.log", "stack*/actions.log", "ingest*/ingest.log", "inbox*/inbox.log")
SAID = [  # distinctive, so a match in a log can only be this text
    "buongiorno, vorrei prenotare una visita dal cardiologo lunedì mattina",
    "vorrei parlare con un infermiere per favore, riguarda le mie analisi",
    "ho ancora la pressione alta dopo la nuova pastiglia",
]
NURSE_SAYS = "Buongiorno Giovanni Verdi, sono l'infermiera Bianca: mi dica pure della pastiglia."


def demo_patient_data() -> list[str]:
    """Every name, date of birth (as people write it) and phone number (as systems write it) of the demo."""
    demo = yaml.safe_load((PROJECT_ROOT / "clinic" / "demo" / "clinic.yml").read_text(encoding="utf-8"))
    found: set[str] = set()
    for patient in demo["patients"]:
        found |= {patient["first_name"], patient["last_name"], f"{patient['first_name']} {patient['last_name']}"}
        born = patient["date_of_birth"]
        born = born if isinstance(born, date) else date.fromisoformat(str(born))
        found |= {born.isoformat(), born.strftime("%d/%m/%Y"), f"{born.day}/{born.month}/{born.year}",
                  born.strftime("%d.%m.%Y"), born.strftime("%Y%m%d")}
        for link in patient["contacts"]:
            number = str(link["wa_id"])
            found |= {number, "+" + number, number[2:]}  # E.164 digits, with +, national (39/44 dropped)
    return sorted(found)


def leaks(text: str, secrets: list[str]) -> list[tuple[str, str]]:
    """(secret, log line) for every line holding one: whole words for names, anywhere for the rest."""
    found = []
    for line in text.splitlines():
        for secret in secrets:
            pattern = rf"(?<![\w]){re.escape(secret)}(?![\w])" if secret.isalpha() else re.escape(secret)
            if re.search(pattern, line):
                found.append((secret, line[:300]))
    return found


def test_a_whole_conversation_leaves_no_patient_data_in_any_log(whatsapp_via_ingest, stack, inbox,
                                                                tmp_path_factory):
    db = Database(stack.database_url)
    giovanni = Chat(whatsapp_via_ingest, phone="393330000001", name="Giovanni Verdi")  # demo, consented
    giovanni.says(SAID[0])
    turn = giovanni.wait_for("slot_id", timeout=REPLY_SECONDS)
    giovanni.taps(slot_options(turn)[0])
    confirm = giovanni.wait_for("Confermi?", timeout=REPLY_SECONDS)
    giovanni.taps(next(o for o in options(confirm) if o["id"] == "/affirm"))
    giovanni.wait_for("Prenotato", timeout=REPLY_SECONDS)

    giovanni.says(SAID[1])
    patient = contact(db, wa_id=giovanni.phone)
    ticket = wait_until(lambda: handoff.open_ticket_for(db, patient.id), timeout=REPLY_SECONDS, what="a ticket")
    add_nurse(db, "carla")  # not bianca: the handoff e2e test adds her to the same stack
    nurse = InboxClient(inbox)
    assert nurse.login("carla", PASSWORD).status_code == 303
    assert nurse.get(f"/tickets/{ticket.id}").status_code == 200
    assert nurse.post(f"/tickets/{ticket.id}/claim").status_code == 303
    assert nurse.post(f"/tickets/{ticket.id}/reply", {"text": NURSE_SAYS}).status_code == 303
    giovanni.wait_for("infermiera Bianca", timeout=REPLY_SECONDS)
    giovanni.says(SAID[2])
    wait_until(lambda: SAID[2] in nurse.get(f"/api/tickets/{ticket.id}").text, timeout=REPLY_SECONDS,
               what="the patient's message in the inbox")
    assert nurse.post(f"/tickets/{ticket.id}/resolve").status_code == 303
    wait_until(lambda: handoff.open_ticket_for(db, patient.id) is None, what="the hand-back")

    base = tmp_path_factory.getbasetemp()
    logs = {pattern: sorted(base.glob(pattern)) for pattern in LOGS}
    assert all(logs.values()), logs  # every process's log is there to be read
    secrets = demo_patient_data() + SAID + [NURSE_SAYS]
    assert leaks(f"INFO x - got {SAID[0]} from +393330000001", secrets)  # the search does find them
    found = []
    for paths in logs.values():
        for path in paths:
            text = path.read_text(encoding="utf-8", errors="replace")
            assert text.strip(), f"{path} is empty"
            found += [(path.name, *leak) for leak in leaks(text, secrets)]
    assert found == []
