"""Red-flag triage: words that must get emergency guidance at once, whatever else is going on.

A lexicon, not a model: it runs before consent, forms and handoff, costs microseconds and can be
read and extended by clinicians. Recall comes first (tests pin 100 % on the table in
tests/core/test_triage.py); a sentence is spared only when it clearly talks about the past, says
the symptom is absent, or asks about prevention ("l'anno scorso ho avuto dolore al petto, vorrei
un controllo").
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# Each pattern is matched against accent-free, lower-case text with single spaces.
RED_FLAGS: dict[str, list[str]] = {
    "pregnancy": [
        r"(incinta|gravidanza)\b.*\b(sangu|perdit[ae] di sangue|dolori forti)",
        r"pregnant\b.*\b(bleed|blood|severe pain)",
    ],
    "chest_pain": [
        r"(dolore|dolori|male|fitta|fitte|oppressione|peso|stretta|bruciore) (forte |fortissimo |forti )?"
        r"(al|nel|sul) petto",
        r"dolore toracico",
        r"chest (pain|pains|tightness|pressure)",
        r"(pain|pressure|tightness|crushing \w+) in (my|his|her|the) chest",
        r"\bchest (hurts|is (really |very )?tight|feels tight)",
        r"tight chest",
    ],
    "heart_attack": [
        r"\b(sto avendo|sta avendo|stia avendo|credo di avere|penso di avere|forse ho|ho|ha|abbia) un infarto\b",
        r"\b(having|have|had|has) a heart attack\b",
    ],
    "breathing": [
        r"non (riesco|riesce|riusciamo|riescono) (piu )?a respirare",
        r"non respir[oa]",
        r"(fatic[oa]|fa fatica) a respirare",
        r"(mi|gli|le) manca (il respiro|l ?aria)",
        r"soffoc",
        r"(can ?not|cant|cannot|unable to|struggling to|hard to) breathe",
        r"(difficulty|trouble) breathing",
        r"short(ness)? of breath",
        r"\bchoking\b",
        r"gasping for (air|breath)",
    ],
    "stroke": [
        r"(bocca|faccia|viso) (storta|storto|cadente)",
        r"\b(non|nn) (riesco|riesce) (piu )?a (muovere|alzare|sentire) (il braccio|la gamba|il lato|meta|mezzo)",
        r"(parla|parlo) (male|strano) (all ?improvviso|di colpo)",
        r"non riesce (piu )?a parlare",
        r"\bictus\b",
        r"\bparesi\b",
        r"face (is )?droop",
        r"slurr(ed|ing) (speech|words)",
        r"(cant|cannot|can not) (move|lift|feel) (my|his|her) (arm|leg|face)",
        r"(having|had|has) a stroke",
        r"\bstroke\b",
    ],
    "unconscious": [
        r"(e|sono) svenut[oa]",
        r"(ha|ho) perso (i sensi|conoscenza)",
        r"priv[oa] di sensi",
        r"incoscient",
        r"non (risponde|reagisce) (piu|quando|se)",
        r"\bunconscious\b",
        r"passed out",
        r"\bfainted\b",
        r"(unresponsive|not responding|wont wake up)",
        r"\bcollapsed\b",
    ],
    "bleeding": [
        r"emorragia",
        r"sanguin\w* (tanto|molto|moltissimo|senza fermarsi|e non si ferma)",
        r"(perdo|perde) (tanto|molto) sangue",
        r"sangue (che )?non si ferma",
        r"(vomit\w*|tossisc\w*|sputo|sputa) sangue",
        r"bleeding (heavily|a lot|badly|wont stop|will not stop|that wont stop)",
        r"(wont|will not|doesnt|does not) stop bleeding",
        r"(losing|lost) a lot of blood",
        r"(vomiting|coughing|throwing) up blood",
        r"pouring (with )?blood",
        r"\b(sangue|sanguin\w*)\b.*\bda (un ?ora|mezz ?ora|\d+ ore|ore)\b",  # "sangue dal naso da un'ora"
        r"\b(bleed\w*|blood)\b.*\bfor (an|over an|more than an|\d+) hours?\b",
    ],
    "meningitis": [
        r"\b(febbre|fever)\b.*\b(collo rigido|rigidita (del|al) collo|stiff neck)",
        r"\b(collo rigido|rigidita (del|al) collo|stiff neck)\b.*\b(febbre|fever)\b",
    ],
    "self_harm": [
        r"voglio morire",
        r"non (voglio|ce la faccio) (piu )?(a )?vivere",
        r"(togliermi|toglierm[iy]) la vita",
        r"farla finita",
        r"suicid",
        r"(uccidermi|ammazzarmi|ammazzo|uccido|suicidarmi)\b",
        r"\bmi (voglio |vorrei |devo )?(ammazzare|uccidere|suicidare)\b",
        r"\b(mi butto|buttarmi) (giu|dal|dalla|sotto)\b",
        r"kill (myself|me)",
        r"\bend (my|it all|my life)",  # \b: "send my cv" is not self-harm
        r"\b(want|going|gonna) to end it\b",
        r"take my (own )?life",
        r"(jump|jumping) (off|from) (a |the )?(bridge|building|roof|balcony)",
        r"want to die",
        r"(dont|do not) want to (live|be alive)",
        r"(hurt|harm|cut)(ing)? myself",
        r"self[ -]?harm",
    ],
    "anaphylaxis": [
        r"(gola|lingua|labbra) (mi )?(si )?(gonfi|sta gonfiando|stanno gonfiando)",
        r"(mi|gli|le) si (gonfia|sta gonfiando|stanno gonfiando) (la gola|la lingua|le labbra)",
        r"(shock )?anafilatti",
        r"(throat|tongue|lips) (is |are )?(swelling|swollen|closing)",
        r"anaphyla",
    ],
    "seizure": [
        r"convulsion",
        r"(crisi|attacco) epilettic",
        r"seizure",
        r"\bconvulsing\b",
        r"having a fit\b",
    ],
    "poisoning": [
        r"overdose",
        r"avvelenament",
        r"(ha|ho) (bevuto|ingerito|mangiato) (la |della )?(candeggina|varechina|detersivo|veleno)",
        r"(troppe|tutte le) (pastiglie|pillole|compresse)",
        r"(swallowed|drank|ate) (some )?(bleach|poison|detergent)",
        r"too many (pills|tablets)",
        r"\bpoisoned\b",
    ],
    "thunderclap_headache": [
        r"(il )?peggior mal di testa",
        r"mal di testa (fortissimo|improvviso|atroce|terribile) (e )?(improvviso|all ?improvviso|di colpo)",
        r"worst headache",
        r"sudden (severe|terrible|excruciating) headache",
    ],
}

# A sentence that clearly speaks of the past, of an absent symptom, or of prevention is spared.
SPARING_CUES = [
    # the past, at a distance
    r"\b(anno|anni|mesi|mese) (fa|scorso|scorsi|passato)\b",
    r"\bl ?anno scorso\b",
    r"\b(l ?)?(estate|inverno|primavera|autunno) scors[ao]\b",  # a season ago: months away, like "mesi fa"
    r"\b(settimane|tempo) fa\b",
    r"\bin passato\b",
    r"\bda (piccol|bambin|ragazz)",
    r"\b(last|a few|several|two|three|\d+) (year|years|month|months)\b",
    r"\blast (spring|summer|autumn|fall|winter)\b",
    r"\byears? ago\b",
    r"\bmonths? ago\b",
    r"\bin the past\b",
    r"\ba (long )?while ago\b",
    r"\bhistory of\b",
    r"\bstoria di\b",
    # absent
    r"\bnon ho (piu |mai )?(avuto )?(\w+ ){0,2}(dolor|male|fitt|sintom|problem)",
    r"\bnessun\w* (dolore|sintomo|problema)",
    r"\bsenza (dolore|sintomi)\b",
    r"\b(no|without) (more )?(chest pain|pain|symptoms)\b",
    r"\b(dont|do not|doesnt|does not|no longer) (have|has|get)\b",
    # prevention, information, paperwork
    r"\bprevenzion",
    r"\bprevenire\b",
    r"\bscreening\b",
    r"\b(rischio|risk) (di|of)\b",
    r"\bprevent(ion|ing)?\b",
    r"\bcorso di primo soccorso\b",
    r"\bfirst aid course\b",
    r"\bcertificat",
]

_SENTENCE_END = re.compile(r"[.!?;\n]+")
_COMPILED = {name: [re.compile(p) for p in patterns] for name, patterns in RED_FLAGS.items()}
_SPARING = [re.compile(p) for p in SPARING_CUES]


@dataclass(frozen=True)
class RedFlag:
    category: str  # e.g. "chest_pain": goes into the urgent ticket, never the patient's words


def normalise(text: str) -> str:
    """Lower case, no accents, no apostrophes, single spaces: "Can't, dall'oculista" → "cant, dalloculista"."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    plain = re.sub(r"[’'`´]", "", plain)
    return re.sub(r"[^\w.!?;\n ]+", " ", plain).replace("  ", " ")


def red_flag(text: str) -> RedFlag | None:
    """The first red flag in the message, or None. Sentences are judged one at a time."""
    for sentence in _SENTENCE_END.split(normalise(text)):
        sentence = " ".join(sentence.split())
        if not sentence or any(cue.search(sentence) for cue in _SPARING):
            continue
        for category, patterns in _COMPILED.items():
            if any(p.search(sentence) for p in patterns):
                return RedFlag(category)
    return None
