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
