"""The approved message templates the sandbox knows, as Meta's WhatsApp Manager would hold them.

Templates are what a business may send outside the 24-hour customer service window, so the sandbox
checks name, language and parameter counts exactly as Meta does (132001 / 132000). Tests can add
their own through `PUT /_sandbox/templates`.
"""

from __future__ import annotations

import copy

# name -> {"category", "languages": {code: {"header"?, "body", "buttons": [quick-reply labels]}}}
# Bodies use Meta's {{n}} placeholders; the number of placeholders is the required parameter count.
DEFAULT_TEMPLATES: dict[str, dict] = {
    "clinic_new_message": {
        "category": "utility",
        "languages": {
            "it": {"body": "Ciao {{1}}, la clinica ti ha scritto. Tocca «Leggi» per vedere il messaggio.",
                   "buttons": ["Leggi"]},
            "en": {"body": "Hello {{1}}, the clinic has written to you. Tap “Read” to see the message.",
                   "buttons": ["Read"]},
        },
    },
    "appointment_reminder": {
        "category": "utility",
        "languages": {
            # clinic.outreach.reminders: first name, date, time, practitioner, location, preparation
            "it": {"body": "Promemoria per {{1}}: visita {{2}} alle {{3}} con {{4}}, presso {{5}}. {{6}} "
                           "Puoi confermare, spostare o disdire qui sotto.",
                   "buttons": ["Confermo", "Sposta", "Annulla"]},
            "en": {"body": "Reminder for {{1}}: visit on {{2}} at {{3}} with {{4}}, at {{5}}. {{6}} "
                           "You can confirm, reschedule or cancel below.",
                   "buttons": ["Confirm", "Reschedule", "Cancel"]},
        },
    },
    "waitlist_offer": {
        "category": "utility",
        "languages": {
            # clinic.outreach.backfill: first name, date, time, practitioner, location, held until
            "it": {"body": "Ciao {{1}}, si è liberato un posto: {{2}} alle {{3}} con {{4}}, presso {{5}}. "
                           "Lo teniamo per te fino alle {{6}}: vuoi prenotarlo?",
                   "buttons": ["Prenota", "No, grazie"]},
            "en": {"body": "Hello {{1}}, a time has freed up: {{2}} at {{3}} with {{4}}, at {{5}}. "
                           "We hold it for you until {{6}}: would you like to book it?",
                   "buttons": ["Book it", "No, thanks"]},
        },
    },
    "waitlist_offer_gone": {
        "category": "utility",
        "languages": {
            # first name, date, time
            "it": {"body": "Ciao {{1}}, il posto di {{2}} alle {{3}} è stato preso da un altro paziente. "
                           "Resti in lista d'attesa: ti scriviamo se se ne libera un altro."},
            "en": {"body": "Hello {{1}}, the time on {{2}} at {{3}} has gone to another patient. "
                           "You stay on the waitlist: we'll write if another one frees up."},
        },
    },
    "followup_prescription_pickup": {
        "category": "utility",
        "languages": {
            # clinic.outreach.followups: first name, specialty, location
            "it": {"body": "Ciao {{1}}, la prescrizione della visita di {{2}} è pronta: puoi ritirarla presso {{3}}."},
            "en": {"body": "Hello {{1}}, the prescription from your {{2}} visit is ready: "
                           "you can pick it up at {{3}}."},
        },
    },
    "followup_test": {
        "category": "utility",
        "languages": {
            # first name, specialty, the test to book
            "it": {"body": "Ciao {{1}}, dopo la visita di {{2}} il medico consiglia un controllo: {{3}}. "
                           "Vuoi prenotarlo?", "buttons": ["Prenota"]},
            "en": {"body": "Hello {{1}}, after your {{2}} visit the doctor advises a follow-up test: {{3}}. "
                           "Would you like to book it?", "buttons": ["Book"]},
        },
    },
    "followup_next_checkup": {
        "category": "utility",
        "languages": {
            # first name, specialty, the visit to book
            "it": {"body": "Ciao {{1}}, grazie per la visita di {{2}}. Quando vuoi, puoi già prenotare il prossimo "
                           "controllo ({{3}}).", "buttons": ["Prenota"]},
            "en": {"body": "Hello {{1}}, thank you for your {{2}} visit. Whenever you like, you can book your next "
                           "check-up ({{3}}).", "buttons": ["Book"]},
        },
    },
    "visit_satisfaction": {
        "category": "utility",
        "languages": {
            # first name, specialty, day of the visit
            "it": {"body": "Ciao {{1}}, com'è andata la visita di {{2}} del {{3}}? Dacci un voto da 1 (male) a 5 "
                           "(benissimo).", "buttons": ["1", "2", "3", "4", "5"]},
            "en": {"body": "Hello {{1}}, how was your {{2}} visit on {{3}}? Rate it from 1 (poor) to 5 (excellent).",
                   "buttons": ["1", "2", "3", "4", "5"]},
        },
    },
    "missed_visit": {
        "category": "utility",
        "languages": {
            # first name, specialty, day of the visit
            "it": {"body": "Ciao {{1}}, non ti abbiamo visto alla visita di {{2}} del {{3}}. Vuoi prenotarne "
                           "un'altra?", "buttons": ["Prenota"]},
            "en": {"body": "Hello {{1}}, we missed you at your {{2}} visit on {{3}}. Would you like to book "
                           "another?", "buttons": ["Book"]},
        },
    },
    "results_ready": {
        "category": "utility",
        "languages": {
            "it": {"body": "Ciao {{1}}, i tuoi referti sono pronti.", "buttons": ["Vedi referti"]},
            "en": {"body": "Hello {{1}}, your results are ready.", "buttons": ["See results"]},
        },
    },
    "hello_world": {
        "category": "utility",
        "languages": {"en_US": {"header": "Hello World", "body": "Welcome and congratulations!!", "buttons": []}},
    },
}


def default_templates() -> dict[str, dict]:
    """A fresh copy, so a test that adds templates never leaks them into the next."""
    return copy.deepcopy(DEFAULT_TEMPLATES)


def placeholder_count(text: str | None) -> int:
    """How many distinct {{n}} parameters a template text needs."""
    if not text:
        return 0
    count = 0
    while "{{" + str(count + 1) + "}}" in text:
        count += 1
    return count


def render(text: str, params: list[str]) -> str:
    """The text a patient sees, placeholders filled."""
    for index, value in enumerate(params, start=1):
        text = text.replace("{{" + str(index) + "}}", value)
    return text
