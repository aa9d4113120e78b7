"""Lab results and the identity check against a real database: files encrypted at rest, nothing
released without the date of birth, limited attempts, single-use expiring links, all audited."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from clinic import crypto, identity, patients, results
from clinic.models import AuditEntry, ResultDelivery, ResultStatus
from clinic.settings import settings
from tests.conftest import DEMO_NOW

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
GIOVANNI, GIOVANNI_BORN = 1, date(1958, 4, 12)
RULES = identity.Rules(max_attempts=3, lockout=timedelta(minutes=30), validity=timedelta(minutes=15))


@pytest.fixture(autouse=True)
def results_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("RESULTS_DIR", str(tmp_path / "results"))
    settings.cache_clear()
    return tmp_path / "results"


def kinds(db, prefix: str) -> list[tuple[str, dict]]:
    with db.reading() as session:
        return [(e.kind, e.data) for e in session.scalars(select(AuditEntry).order_by(AuditEntry.seq))
                if e.kind.startswith(prefix)]


def giovanni(db) -> int:
    return patients.contact_id(db, "393330000001")


def test_a_registered_report_is_encrypted_on_disk_and_reads_back(demo_db, results_dir):
    view, new = results.register(demo_db, GIOVANNI, "Esami del sangue", PDF, kind="blood_tests", delivery="document")
    assert new and view.status is ResultStatus.ready and view.delivery is ResultDelivery.document
    (stored,) = results_dir.iterdir()
    assert PDF not in stored.read_bytes() and crypto.decrypt(stored.read_bytes()) == PDF
    assert results.read_pdf(demo_db, view.id) == PDF
    assert view.filename == f"esami-del-sangue-{view.id}.pdf"
    [(kind, data)] = kinds(demo_db, "result.")
    assert kind == "result.registered" and data["patient_id"] == GIOVANNI and "title" not in data


def test_the_same_lab_id_twice_registers_once(demo_db, results_dir):
    first, new = results.register(demo_db, GIOVANNI, "Emocromo", PDF, source="lab:api", external_id="LAB-7")
    again, new_again = results.register(demo_db, GIOVANNI, "Emocromo", PDF, source="lab:api", external_id="LAB-7")
    assert new and not new_again and again.id == first.id
    assert len(list(results_dir.iterdir())) == 1


@pytest.mark.parametrize(("pdf", "error"), [(b"GIF89a not a pdf", results.NotAPdf),
                                            (PDF + b"0" * (1024 * 1024), results.TooLarge)], ids=["gif", "big"])
def test_anything_but_a_pdf_within_the_limit_is_refused(demo_db, monkeypatch, pdf, error, results_dir):
    monkeypatch.setenv("RESULTS_MAX_MB", "1")
    settings.cache_clear()
    with pytest.raises(error):
        results.register(demo_db, GIOVANNI, "Emocromo", pdf)
    assert not results_dir.exists() or not list(results_dir.iterdir())


def test_an_unknown_patient_is_refused_and_leaves_no_file(demo_db, results_dir):
    with pytest.raises(results.UnknownPatient):
        results.register(demo_db, 999, "Emocromo", PDF)
    assert not results_dir.exists() or not list(results_dir.iterdir())


def test_nothing_is_released_without_a_passed_identity_check(demo_db):
    view, _ = results.register(demo_db, GIOVANNI, "Emocromo", PDF, delivery="document")
    with pytest.raises(results.IdentityRequired):
        results.document(demo_db, view.id, giovanni(demo_db))
    with pytest.raises(results.IdentityRequired):
        results.issue_link(demo_db, view.id, giovanni(demo_db))
    assert results.get(demo_db, view.id).status is ResultStatus.ready


def test_the_right_date_releases_the_document_for_a_while_and_is_audited(demo_db):
    contact = giovanni(demo_db)
    view, _ = results.register(demo_db, GIOVANNI, "Emocromo", PDF, delivery="document")
    verdict = identity.check(demo_db, contact, GIOVANNI, GIOVANNI_BORN, now=DEMO_NOW, rules=RULES)
    assert verdict.outcome is identity.Outcome.passed
    assert identity.standing(demo_db, contact, DEMO_NOW + timedelta(minutes=14)).verified_for(GIOVANNI)
    assert not identity.standing(demo_db, contact, DEMO_NOW + timedelta(minutes=16)).verified_for(GIOVANNI)
    assert not identity.standing(demo_db, contact, DEMO_NOW).verified_for(3)  # another patient: ask again
    attachment = results.document(demo_db, view.id, contact, now=DEMO_NOW + timedelta(minutes=1))
    assert attachment["encrypted"] and attachment["mime"] == "application/pdf"
    assert crypto.decrypt(open(attachment["path"], "rb").read()) == PDF
    assert results.get(demo_db, view.id).status is ResultStatus.delivered
    assert [k for k, _ in kinds(demo_db, "identity.")] == ["identity.passed"]
    [(_, delivered)] = [(k, d) for k, d in kinds(demo_db, "result.") if k == "result.delivered"]
    assert delivered == {"result_id": view.id, "patient_id": GIOVANNI, "contact_id": contact, "mode": "document"}


def test_wrong_dates_count_down_then_lock_and_a_lock_refuses_even_the_right_date(any_demo_db):
    contact = giovanni(any_demo_db)
    wrong = date(1958, 12, 4)
    outcomes = [identity.check(any_demo_db, contact, GIOVANNI, wrong, now=DEMO_NOW, rules=RULES) for _ in range(3)]
    assert [(v.outcome.value, v.attempts_left) for v in outcomes] == [("failed", 2), ("failed", 1), ("locked", 0)]
    later = DEMO_NOW + timedelta(minutes=29)
    assert identity.check(any_demo_db, contact, GIOVANNI, GIOVANNI_BORN, now=later, rules=RULES).outcome \
        is identity.Outcome.locked
    assert identity.standing(any_demo_db, contact, later).locked
    after = DEMO_NOW + timedelta(minutes=31)
    assert not identity.standing(any_demo_db, contact, after).locked
    assert identity.check(any_demo_db, contact, GIOVANNI, GIOVANNI_BORN, now=after, rules=RULES).outcome \
        is identity.Outcome.passed
    audited = kinds(any_demo_db, "identity.")
    assert [k for k, _ in audited] == ["identity.failed"] * 4 + ["identity.passed"]
    assert all(set(d) == {"contact_id", "patient_id", "method", "outcome", "attempts_left", "locked_until"}
               for _, d in audited)


def test_failures_long_ago_no_longer_count(demo_db):
    contact = giovanni(demo_db)
    for _ in range(2):
        identity.check(demo_db, contact, GIOVANNI, date(2000, 1, 1), now=DEMO_NOW, rules=RULES)
    later = identity.check(demo_db, contact, GIOVANNI, date(2000, 1, 1), now=DEMO_NOW + timedelta(hours=1),
                           rules=RULES)
    assert (later.outcome, later.attempts_left) == (identity.Outcome.failed, 2)


def test_a_link_works_once_after_the_date_of_birth_and_expires(demo_db, monkeypatch):
    monkeypatch.setenv("RESULTS_LINK_MINUTES", "60")
    settings.cache_clear()
    contact = giovanni(demo_db)
    view, _ = results.register(demo_db, GIOVANNI, "Emocromo", PDF, delivery="link")
    identity.check(demo_db, contact, GIOVANNI, GIOVANNI_BORN, now=DEMO_NOW)
    token, expires = results.issue_link(demo_db, view.id, contact, now=DEMO_NOW)
    assert expires == DEMO_NOW + timedelta(minutes=60)
    assert results.link_url(token).endswith(f"/r/{token}")
    assert results.link_info(demo_db, token, DEMO_NOW).state is results.LinkState.open
    assert results.get(demo_db, view.id).status is ResultStatus.ready  # sent is not delivered

    wrong = results.redeem(demo_db, token, date(1958, 4, 21), now=DEMO_NOW)
    assert wrong.pdf is None and wrong.verdict.outcome is identity.Outcome.failed and wrong.state.value == "open"
    right = results.redeem(demo_db, token, GIOVANNI_BORN, now=DEMO_NOW + timedelta(minutes=1))
    assert right.pdf == PDF and right.filename.endswith(".pdf")
    assert results.get(demo_db, view.id).status is ResultStatus.delivered
    assert results.redeem(demo_db, token, GIOVANNI_BORN, now=DEMO_NOW).state is results.LinkState.used
    assert results.link_info(demo_db, "not-a-token").state is results.LinkState.unknown

    identity.check(demo_db, contact, GIOVANNI, GIOVANNI_BORN, now=DEMO_NOW)
    late, _ = results.issue_link(demo_db, view.id, contact, now=DEMO_NOW)
    assert results.link_info(demo_db, late, DEMO_NOW + timedelta(minutes=61)).state is results.LinkState.expired
    assert results.redeem(demo_db, late, GIOVANNI_BORN, now=DEMO_NOW + timedelta(minutes=61)).pdf is None
    methods = [d["method"] for k, d in kinds(demo_db, "identity.")]
    assert methods == ["chat", "link", "link", "chat"]


def test_a_newer_link_revokes_the_older_one_and_a_lockout_revokes_the_link(demo_db):
    contact = giovanni(demo_db)
    view, _ = results.register(demo_db, GIOVANNI, "Emocromo", PDF, delivery="link")
    identity.check(demo_db, contact, GIOVANNI, GIOVANNI_BORN, now=DEMO_NOW)
    old, _ = results.issue_link(demo_db, view.id, contact, now=DEMO_NOW)
    new, _ = results.issue_link(demo_db, view.id, contact, now=DEMO_NOW)
    assert results.link_info(demo_db, old, DEMO_NOW).state is results.LinkState.used
    for _ in range(3):
        last = results.redeem(demo_db, new, date(1999, 9, 9), now=DEMO_NOW)
    assert last.verdict.outcome is identity.Outcome.locked and last.state is results.LinkState.used
    assert results.redeem(demo_db, new, GIOVANNI_BORN, now=DEMO_NOW).pdf is None


def race(db, calls: list) -> list:
    """Each call(db) on its own engine, released together (real concurrent transactions)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from clinic.db import Database

    barrier = threading.Barrier(len(calls))

    def attempt(call):
        own = Database(db.url)
        try:
            barrier.wait()
            return call(own)
        finally:
            own.dispose()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(attempt, calls))


def test_concurrent_wrong_dates_are_all_counted(any_demo_db):
    contact = giovanni(any_demo_db)
    verdicts = race(any_demo_db, [lambda db: identity.check(db, contact, GIOVANNI, date(2001, 1, 1), now=DEMO_NOW,
                                                            rules=RULES)] * 8)
    assert sorted(v.attempts_left for v in verdicts if v.outcome is identity.Outcome.failed) == [1, 2]
    assert sum(v.outcome is identity.Outcome.locked for v in verdicts) == 6
    assert identity.standing(any_demo_db, contact, DEMO_NOW).locked


def test_a_link_clicked_twice_at_once_serves_the_report_once(any_demo_db):
    contact = giovanni(any_demo_db)
    view, _ = results.register(any_demo_db, GIOVANNI, "Emocromo", PDF, delivery="link")
    identity.check(any_demo_db, contact, GIOVANNI, GIOVANNI_BORN, now=DEMO_NOW)
    token, _ = results.issue_link(any_demo_db, view.id, contact, now=DEMO_NOW)
    served = race(any_demo_db, [lambda db: results.redeem(db, token, GIOVANNI_BORN, now=DEMO_NOW)] * 6)
    assert sum(r.pdf == PDF for r in served) == 1
    delivered = [k for k, _ in kinds(any_demo_db, "result.delivered")]
    assert delivered == ["result.delivered"]
