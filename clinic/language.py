"""Which language a patient writes in: Italian or English, from a short WhatsApp message.

Word lists beat statistical detectors on three-word messages ("ciao", "ok grazie", "hi there"):
the words that decide are the ones patients of a clinic actually write.
"""

from __future__ import annotations

import re

SUPPORTED = ("it", "en")

_MARKERS = {
    "it": """
        ciao buongiorno buonasera salve grazie prego vorrei voglio posso potrei sono ho hai ha
        il lo la gli le un una uno di da del della dello dei delle al alla allo dal dalla per con
        che chi non mi ti si ci è e sì si no perché come quando dove quanto domani oggi dopodomani
        lunedì martedì mercoledì giovedì venerdì sabato domenica lunedi martedi mercoledi giovedi
        venerdi mattina pomeriggio sera settimana prossimo prossima appuntamento visita prenotare
        prenotazione disdire annullare spostare medico dottore dottoressa esami analisi risultati
        aiuto italiano basta buona arrivederci figlio figlia mamma papà madre padre mio mia
        va bene certo per favore
    """.split(),
    "en": """
        hi hello hey morning evening thanks thank you please would like want can could is are am
        i i'm my me the an of to from for with what who not when where how much tomorrow today
        monday tuesday wednesday thursday friday saturday sunday afternoon week next appointment
        visit book booking cancel reschedule doctor results test tests help english bye goodbye
        son daughter mum mom dad mother father yes yeah no nope sure need see there
    """.split(),
}
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")


_NAMED = {
    "it": {"italiano", "italian", "ita", "italien"},
    "en": {"english", "inglese", "eng", "englisch"},
}


def requested_language(text: str) -> str | None:
    """The language a patient asks for by name ("can we speak Italian?" → 'it'), if any."""
    words = set(_WORD.findall(text.lower()))
    named = [lang for lang, names in _NAMED.items() if words & names]
    return named[0] if len(named) == 1 else None


def detect_language(text: str, phone: str | None = None) -> str | None:
    """'it' or 'en' when the text says so; an Italian number (+39) only breaks a tie.

    None when nothing in the text leans either way and the number does not help.
    """
    words = _WORD.findall(text.lower())
    scores = {lang: sum(word in markers for word in words) for lang, markers in _MARKERS.items()}
    if scores["it"] != scores["en"]:
        return max(scores, key=scores.get)
    if phone and phone.lstrip("+").startswith("39"):
        return "it"
    return None
