"""The consent ledger and the privacy notice, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from clinic import audit, consent
from clinic.models import AuditEntry, ConsentRecord, Contact, utcnow


@pytest.fixture
def contact_id(any_db) -> int:
    with any_db.transaction() as session:
        contact = Contact(wa_id="393331112223")
        session.add(contact)
        session.flush()
        return contact.id


def test_a_new_contact_has_not_been_asked_and_may_not_be_processed(any_db, contact_id):
    state = consent.state(any_db, contact_id)
    assert (state.version, state.asked, state.granted) == ("1", False, frozenset())
    assert not consent.allows(any_db, contact_id, "appointments")


def test_the_packaged_notice_is_version_one_in_both_languages(any_db):
    it, en = consent.current_notice(any_db, "it"), consent.current_notice(any_db, "en")
    assert (it.version, en.version) == ("1", "1")
    assert "STOP" in it.text and "STOP" in en.text and "112" in it.text


def test_each_purpose_is_granted_on_its_own_and_every_decision_is_kept(any_db, contact_id):
    consent.decide(any_db, contact_id, ["appointments", "results"], how="whatsapp:button")
    assert consent.state(any_db, contact_id).granted == {"appointments", "results"}
    assert not consent.allows(any_db, contact_id, "followups")
    later = consent.decide(any_db, contact_id, ["appointments"], how="whatsapp:text")
    assert later.granted == {"appointments"}
    with any_db.reading() as session:
        rows = session.execute(select(ConsentRecord.purpose, ConsentRecord.granted, ConsentRecord.how)
                               .order_by(ConsentRecord.id)).all()
    assert [tuple(r) for r in rows] == [
        ("appointments", True, "whatsapp:button"), ("results", True, "whatsapp:button"),
        ("followups", False, "whatsapp:button"),
        ("appointments", True, "whatsapp:text"), ("results", False, "whatsapp:text"),
        ("followups", False, "whatsapp:text"),
    ]


def test_stop_withdraws_everything_and_opting_in_again_restores(any_db, contact_id):
    consent.decide(any_db, contact_id, consent.PURPOSES, how="whatsapp:button")
    stopped = consent.opt_out(any_db, contact_id, how="whatsapp:stop")
    assert stopped.asked and stopped.granted == frozenset()
    assert not any(consent.allows(any_db, contact_id, p) for p in consent.PURPOSES)
    assert consent.decide(any_db, contact_id, consent.CHOICES["all"], how="whatsapp:button").granted == set(
        consent.PURPOSES)


def test_a_new_notice_version_asks_everyone_again(any_db, contact_id):
    consent.decide(any_db, contact_id, consent.PURPOSES, how="whatsapp:button")
    consent.publish(any_db, "2026-12", {"it": "Nuova informativa", "en": "New notice"}, now=utcnow() + timedelta(1))
    state = consent.state(any_db, contact_id)
    assert (state.version, state.asked, state.granted) == ("2026-12", False, frozenset())
    assert consent.current_notice(any_db, "en").text == "New notice"
    with pytest.raises(consent.ConsentError):
        consent.publish(any_db, "2026-12", {"it": "x", "en": "y"})
    with pytest.raises(consent.ConsentError):
        consent.publish(any_db, "3", {"it": "solo italiano"})


def test_decisions_are_in_the_audit_trail_with_ids_only(any_db, contact_id):
    consent.decide(any_db, contact_id, ["appointments"], how="whatsapp:button")
    with any_db.reading() as session:
        entries = session.scalars(select(AuditEntry).where(AuditEntry.kind.like("consent.%"))
                                  .order_by(AuditEntry.seq)).all()
    assert [(e.kind, e.data["purpose"]) for e in entries] == [
        ("consent.granted", "appointments"), ("consent.withdrawn", "results"), ("consent.withdrawn", "followups")]
    assert all(e.actor == f"contact:{contact_id}" and "393331112223" not in str(e.data) for e in entries)
    assert audit.verify(any_db).ok


def test_unknown_purposes_are_refused(any_db, contact_id):
    with pytest.raises(consent.ConsentError):
        consent.decide(any_db, contact_id, ["marketing"], how="x")
    with pytest.raises(consent.ConsentError):
        consent.allows(any_db, contact_id, "marketing")


@pytest.mark.parametrize("text,expected", [
    ("STOP", True), ("Stop.", True), ("BASTA", True), ("annulla iscrizione", True), ("UNSUBSCRIBE", True),
    ("Non scrivetemi più!!", True), ("please stop sending me messages", True), ("revoco il consenso 🙏", True),
    ("basta che sia di mattina", False), ("stop by tomorrow?", False), ("annulla l'appuntamento", False),
    ("non posso più venire", False), ("Smettete di scrivermi!", True), ("please stop writing to me", True),
])
def test_opt_out_words_in_both_languages(text, expected):
    assert consent.is_opt_out(text) is expected


@pytest.mark.parametrize("text,expected", [
    ("START", True), ("riattiva", True), ("privacy", True), ("you can message me again", True),
    ("start time?", False), ("STOP", False), ("what is your privacy policy about results?", False),
    ("can I give my consent again?", True), ("I give my consent", False), ("do il consenso", False),
])
def test_opt_in_words_in_both_languages(text, expected):
    assert consent.is_opt_in(text) is expected


def test_clinic_it_publishes_a_notice_from_the_command_line(tmp_path):
    url = f"sqlite:///{tmp_path / 'clinic.db'}"
    env = {**os.environ, "DATABASE_URL": url}
    clinic = str(Path(sys.executable).with_name("clinic"))
    subprocess.run([clinic, "db", "upgrade"], env=env, check=True, capture_output=True, timeout=120)
    (tmp_path / "it.md").write_text("Informativa 2027", encoding="utf-8")
    (tmp_path / "en.md").write_text("Notice 2027", encoding="utf-8")
    shown = subprocess.run([clinic, "privacy", "show", "--language", "en"], env=env, capture_output=True, text=True)
    assert shown.stdout.startswith("version 1 (en)")
    published = subprocess.run([clinic, "privacy", "publish", "--version", "2027-01", "--it", str(tmp_path / "it.md"),
                                "--en", str(tmp_path / "en.md")], env=env, capture_output=True, text=True)
    assert published.returncode == 0 and "asked for consent again" in published.stdout
    shown = subprocess.run([clinic, "privacy", "show"], env=env, capture_output=True, text=True)
    assert shown.stdout == "version 2027-01 (it)\n\nInformativa 2027\n"
    again = subprocess.run([clinic, "privacy", "publish", "--version", "2027-01", "--it", str(tmp_path / "it.md"),
                            "--en", str(tmp_path / "missing.md")], env=env, capture_output=True, text=True)
    assert again.returncode == 1 and again.stderr.startswith("clinic: error:")
