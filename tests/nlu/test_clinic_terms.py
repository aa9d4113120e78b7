"""Specialties and doctors recognised by the names the clinic database holds."""

from rasa.shared.nlu.training_data.message import Message
from sqlalchemy import select

from clinic.db import database
from clinic.models import Location, Practitioner, Specialty
from clinic.nlu.clinic_terms import ClinicTermsExtractor
from clinic.settings import settings


def entities(extractor, text, existing=()):
    message = Message.build(text)
    if existing:
        message.set("entities", list(existing))
    extractor.process([message])
    return [(e["entity"], e["value"], text[e["start"]:e["end"]]) for e in message.get("entities") or []]


def test_specialty_synonyms_and_doctors_in_both_languages(clinic_db):
    extractor = ClinicTermsExtractor({"refresh_seconds": 300})
    assert entities(extractor, "vorrei una visita dall'oculista") == [("specialty", "ophthalmology", "oculista")]
    assert entities(extractor, "I need a heart doctor!") == [("specialty", "cardiology", "heart doctor")]
    assert entities(extractor, "è libera la Dott.ssa Bianchi venerdì?") == [("doctor", "bianchi", "Dott.ssa Bianchi")]
    assert entities(extractor, "ciao, come state?") == []


def test_a_doctor_added_after_training_is_recognised_without_retraining(clinic_db):
    extractor = ClinicTermsExtractor({"refresh_seconds": 0})
    assert entities(extractor, "un appuntamento con il dottor Fontana") == []
    with clinic_db.transaction() as s:
        s.add(Practitioner(key="fontana", title="Dott.", first_name="Ugo", last_name="Fontana",
                           location_id=s.scalars(select(Location.id)).first(),
                           specialties=[s.scalars(select(Specialty).where(Specialty.key == "dermatology")).one()]))
    assert entities(extractor, "un appuntamento con il dottor Fontana") == [("doctor", "fontana", "Fontana")]


def test_what_another_extractor_found_is_kept_not_duplicated(clinic_db):
    diet = {"entity": "specialty", "value": "cardiology", "start": 15, "end": 25, "extractor": "DIETClassifier"}
    found = entities(ClinicTermsExtractor({"refresh_seconds": 300}), "una visita dal cardiologo", [diet])
    assert found == [("specialty", "cardiology", "cardiologo")]


def test_without_a_database_it_finds_nothing_and_does_not_fail(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:9/none")
    settings.cache_clear()
    database.cache_clear()
    assert entities(ClinicTermsExtractor({"refresh_seconds": 300}), "dal cardiologo") == []
    database.cache_clear()


def test_a_specialty_word_in_a_practitioners_name_stays_a_specialty(clinic_db):
    # The demo lab is "Laboratorio Analisi"; "analisi" is a blood-tests synonym.
    found = entities(ClinicTermsExtractor({"refresh_seconds": 300}), "sono pronte le analisi?")
    assert found == [("specialty", "blood_tests", "analisi")]
