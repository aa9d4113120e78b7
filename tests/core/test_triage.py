"""Red-flag triage pinned on a table: every red flag caught (recall 100 %), and look-alikes that
talk about the past, an absent symptom or prevention mostly spared (precision ≥ 90 %)."""

import pytest

from clinic.triage import red_flag

RED_FLAGS = [
    # Italian
    ("ho un forte dolore al petto", "chest_pain"),
    ("mio padre ha male al petto da mezz'ora e suda", "chest_pain"),
    ("sento una stretta al petto che va al braccio sinistro", "chest_pain"),
    ("dolore toracico fortissimo adesso", "chest_pain"),
    ("aiuto oppressione al petto 😰", "chest_pain"),
    ("non riesco a respirare", "breathing"),
    ("mio figlio non respira bene, è tutto blu", "breathing"),
    ("mi manca l'aria e mi gira la testa", "breathing"),
    ("faccio fatica a respirare da stamattina", "breathing"),
    ("mia madre ha la bocca storta e non riesce a parlare", "stroke"),
    ("credo che mio nonno abbia un ictus", "stroke"),
    ("non riesco più a muovere il braccio destro", "stroke"),
    ("mio marito è svenuto e non risponde", "unconscious"),
    ("ha perso i sensi in cucina", "unconscious"),
    ("sto perdendo tanto sangue da una ferita, sanguina tanto", "bleeding"),
    ("ho vomitato sangue", "bleeding"),
    ("il sangue non si ferma", "bleeding"),
    ("voglio farla finita", "self_harm"),
    ("penso di togliermi la vita", "self_harm"),
    ("non voglio più vivere", "self_harm"),
    ("mi voglio ammazzare", "self_harm"),
    ("stanotte mi uccido, non ce la faccio", "self_harm"),
    ("mi butto dal balcone", "self_harm"),
    ("mi si gonfia la gola dopo la puntura di un'ape", "anaphylaxis"),
    ("mio figlio ha le convulsioni", "seizure"),
    ("ha avuto una crisi epilettica adesso", "seizure"),
    ("la bambina ha bevuto la candeggina", "poisoning"),
    ("ho preso troppe pastiglie", "poisoning"),
    ("il peggior mal di testa della mia vita, improvviso", "thunderclap_headache"),
    ("sono incinta di 7 mesi e ho perdite di sangue", "pregnancy"),
    ("DOLORE AL PETTO AIUTO", "chest_pain"),
    # English
    ("I have chest pain", "chest_pain"),
    ("crushing pain in my chest going down my arm", "chest_pain"),
    ("my dad's chest hurts and he is sweating", "chest_pain"),
    ("I can't breathe", "breathing"),
    ("my son is struggling to breathe", "breathing"),
    ("really short of breath and dizzy", "breathing"),
    ("her face is drooping and her speech is slurred", "stroke"),
    ("I think my wife is having a stroke", "stroke"),
    ("he passed out and won't wake up", "unconscious"),
    ("my mum collapsed in the kitchen", "unconscious"),
    ("bleeding heavily from a cut", "bleeding"),
    ("I'm coughing up blood", "bleeding"),
    ("I want to kill myself", "self_harm"),
    ("i want to die", "self_harm"),
    ("I don't want to live anymore", "self_harm"),
    ("i just want to end it", "self_harm"),
    ("I'm going to take my own life", "self_harm"),
    ("my throat is swelling after eating peanuts", "anaphylaxis"),
    ("my daughter is having a seizure", "seizure"),
    ("my toddler swallowed bleach", "poisoning"),
    ("took too many pills", "poisoning"),
    ("worst headache of my life out of nowhere", "thunderclap_headache"),
    ("I'm pregnant and bleeding a lot", "pregnancy"),
    ("chest pain now!! please help", "chest_pain"),
    ("credo di avere un infarto", "heart_attack"),
    ("nn riesco a muovere metà del corpo", "stroke"),
    ("I think I'm having a heart attack", "heart_attack"),
    ("my nose has been pouring blood for an hour", "bleeding"),
    ("mi esce sangue dal naso da un'ora", "bleeding"),
    ("very high fever, stiff neck and a rash…", "meningitis"),
    ("febbre altissima e collo rigido", "meningitis"),
]

LOOK_ALIKES = [
    # Italian
    "l'anno scorso ho avuto dolore al petto, vorrei un controllo",
    "anni fa ho avuto un ictus, vorrei una visita dal cardiologo",
    "non ho più dolore al petto, posso spostare la visita?",
    "vorrei fare prevenzione per il rischio di ictus",
    "prenoto un elettrocardiogramma di controllo",
    "mi serve un certificato per il corso di primo soccorso",
    "in passato ho sofferto di convulsioni, vorrei il neurologo",
    "vorrei prenotare una visita cardiologica",
    "quando sono pronti gli esami del sangue?",
    "devo fare le analisi del sangue a digiuno?",
    "posso respirare con la mascherina durante la visita?",
    "mia madre ha la pressione un po' alta, vorrei una visita",
    "ho mal di testa da due giorni, posso prenotare?",
    "ho la tosse da una settimana",
    "mio figlio ha un po' di febbre, c'è il pediatra domani?",
    "ho una macchia sulla pelle, vorrei il dermatologo",
    "mi fa male il ginocchio quando corro",
    "ho bisogno di rinnovare la ricetta",
    "da piccolo svenivo spesso, ora sto bene",
    "sono incinta e vorrei prenotare l'ecografia",
    "nessun dolore, volevo solo confermare l'appuntamento",
    "vorrei disdire l'appuntamento di martedì",
    "non voglio più ricevere messaggi",
    "l'estate scorsa sono svenuto per il caldo, vorrei un controllo",
    # English
    "I had chest pain last year and would like a check-up",
    "my father had a stroke years ago, can he see a cardiologist?",
    "no chest pain anymore, can I move my appointment?",
    "I'd like a screening for heart disease",
    "what is the risk of stroke with high blood pressure?",
    "I don't have chest pain, just want my blood test results",
    "can I book a blood test?",
    "when are my blood results ready?",
    "I have a cough and a sore throat",
    "my knee hurts after running",
    "I need a repeat prescription",
    "I'm pregnant and want to book a scan",
    "I fainted once in the past, should I mention it?",
    "history of seizures, need a neurology follow-up",
    "my daughter has a mild fever, is the paediatrician in tomorrow?",
    "do I need to fast before the blood test?",
    "can I cancel my appointment on Friday?",
    "I don't want any more messages",
    "I'm breathing fine now, thanks",
    "do you do first aid course certificates?",
    "I had bleeding gums a few months ago",
    "had chest pain last spring, I'd like a cardiologist to check me over",
    "I'm a nurse looking for a job, where do I send my cv?",
    "mio padre ha avuto un infarto anni fa, vorrei un controllo",
    "I had a heart attack five years ago and need my yearly check",
    "stiff neck from sleeping badly, can I see a physio?",
    "a nosebleed this morning, it stopped quickly",
]


@pytest.mark.parametrize(("text", "category"), RED_FLAGS)
def test_every_red_flag_is_caught(text, category):
    found = red_flag(text)
    assert found is not None and found.category == category


def test_the_table_is_large_enough_in_both_directions():
    assert len(RED_FLAGS) >= 40 and len(LOOK_ALIKES) >= 40


def test_look_alikes_are_mostly_spared():
    false_alarms = [text for text in LOOK_ALIKES if red_flag(text) is not None]
    precision = len(RED_FLAGS) / (len(RED_FLAGS) + len(false_alarms))
    assert precision >= 0.90, false_alarms


def test_a_red_flag_after_a_spared_sentence_still_counts():
    assert red_flag("l'anno scorso ho avuto un ictus. Adesso non riesco a respirare!") is not None
