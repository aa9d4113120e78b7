"""The results-ready template against a real database (SQLite and PostgreSQL): once per result,
only with the `results` consent, never in quiet hours, its button naming the result."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from clinic import consent, patients, results
from clinic.models import AuditEntry, LabResult, OutboundMessage
from clinic.outreach import results as results_ready
from clinic.settings import settings
from tests.conftest import DEMO_NOW
from tests.outreach.conftest import EMILY, GIOVANNI

PDF = b"%PDF-1.4\n%%EOF\n"
MORNING = DEMO_NOW + timedelta(hours=2)  # 10:00 in Rome


@pytest.fixture(autouse=True)
def results_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("RESULTS_DIR", str(tmp_path / "results"))
    settings.cache_clear()


def sent(db) -> list[OutboundMessage]:
    with db.reading() as session:
        return session.scalars(select(OutboundMessage).where(OutboundMessage.source == results_ready.SOURCE)
                               .order_by(OutboundMessage.id)).all()


def kinds(db) -> list[str]:
    with db.reading() as session:
        return [k for k in session.scalars(select(AuditEntry.kind).order_by(AuditEntry.seq))
                if k.startswith("result.notif")]


def test_a_new_result_is_announced_once_with_a_button_into_the_identity_check(any_demo_db, client):
    view, _ = results.register(any_demo_db, EMILY, "Full blood count", PDF)
    assert results_ready.send_due(any_demo_db, client, MORNING).sent == 1
    assert results_ready.send_due(any_demo_db, client, MORNING + timedelta(minutes=1)).sent == 0
    (message,) = sent(any_demo_db)
    template = message.body["template"]
    assert (template["name"], template["language"]) == ("results_ready", {"code": "en"})
    body, button = template["components"]
    assert [p["text"] for p in body["parameters"]] == ["Emily"]  # nothing about the result itself
    assert button["parameters"][0]["payload"] == f'/request_test_results{{"result_id": "{view.id}"}}'
    assert message.biz_opaque_callback_data == f"result:{view.id}"
    assert kinds(any_demo_db) == ["result.notified"]
    with any_demo_db.reading() as session:
        assert session.get(LabResult, view.id).notify_outbound_id == message.id


def test_without_the_results_consent_the_result_is_not_announced(any_demo_db, client):
    contact = patients.contact_id(any_demo_db, "393330000001")
    consent.decide(any_demo_db, contact, ["appointments"], how="test")
    results.register(any_demo_db, GIOVANNI, "Emocromo", PDF)
    assert results_ready.send_due(any_demo_db, client, MORNING).skipped == 1
    assert sent(any_demo_db) == [] and kinds(any_demo_db) == ["result.notify_skipped"]


def test_results_wait_for_the_end_of_quiet_hours(any_demo_db, client):
    results.register(any_demo_db, GIOVANNI, "Emocromo", PDF)
    night = DEMO_NOW - timedelta(hours=5)  # 03:00 in Rome
    assert results_ready.send_due(any_demo_db, client, night).sent == 0
    assert results_ready.send_due(any_demo_db, client, MORNING).sent == 1


def test_a_result_already_decided_by_another_worker_is_left_alone(any_demo_db, client):
    view, _ = results.register(any_demo_db, GIOVANNI, "Emocromo", PDF)
    assert results_ready.notify(any_demo_db, client, view.id, MORNING) is True
    assert results_ready.notify(any_demo_db, client, view.id, MORNING) is None
    assert len(sent(any_demo_db)) == 1
