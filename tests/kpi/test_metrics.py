"""Prometheus' /metrics: the inbox, the webhook ingest and the FHIR API over real HTTP, the outreach
worker's own port, the reply histogram."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from clinic import handoff, metrics, scheduling
from clinic.demo import seed
from clinic.models import InboundMessage, OutboundStatus, Patient
from clinic.settings import settings
from tests.inbox.conftest import start_inbox  # noqa: F401 - a fixture
from tests.kpi.fixture import _contact, _outbound
from tests.whatsapp_sandbox import free_port, wait_until

CLINIC = str(Path(sys.executable).with_name("clinic"))


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_the_inbox_serves_clinic_figures(db, start_inbox, monkeypatch):  # noqa: F811
    urgent, normal, other = (_contact(db, f"39333888000{n}") for n in range(3))
    handoff.open_ticket(db, urgent, "emergency")
    handoff.open_ticket(db, normal, "request_human")
    now = datetime.now(timezone.utc)
    with db.transaction() as s:
        # due tomorrow, so the inbox's own sending client leaves it queued
        s.add(_outbound(other, now + timedelta(days=1), "bot", status=OutboundStatus.queued))
        s.add(_outbound(other, now, "inbox:rossi", status=OutboundStatus.held))
        s.add(_outbound(other, now, "bot", status=OutboundStatus.failed, error_code=131026, failed_at=now))
    inbox = start_inbox(METRICS_TOKEN="scrape-me")
    assert requests.get(inbox.base_url + "/metrics", timeout=10).status_code == 401
    answer = requests.get(inbox.base_url + "/metrics", headers={"Authorization": "Bearer scrape-me"}, timeout=10)
    assert answer.status_code == 200
    found = samples(answer.text)
    assert found[("clinic_open_tickets", (("priority", "urgent"),))] == 1
    assert found[("clinic_open_tickets", (("priority", "normal"),))] == 1
    assert found[("clinic_outbox_depth", (("status", "queued"),))] == 1
    assert found[("clinic_outbox_depth", (("status", "held"),))] == 1
    assert found[("clinic_outbox_failures_total", (("error_code", "131026"),))] == 1
    assert found[("clinic_outbound_messages_total", (("source", "bot"),))] == 2
    assert found[("clinic_outbound_messages_total", (("source", "inbox"),))] == 1
    assert found[("clinic_inbound_messages_total", ())] == 0
    assert found[("clinic_outreach_backlog", ())] == 0


def test_reply_latencies_and_backlog_in_the_histogram(db, monkeypatch):
    monkeypatch.setenv("REMINDER_OFFSETS_HOURS", "240")
    monkeypatch.setenv("REMINDER_GRACE_HOURS", "1000")
    monkeypatch.setenv("OUTREACH_QUIET_HOURS", "")
    settings.cache_clear()
    start = datetime.now(timezone.utc)
    clock = [start]
    collector = metrics.ClinicCollector(lambda: db, now=lambda: clock[0])
    seed(db, today=start.astimezone(settings().zone).date())
    slot = scheduling.free_slots(db, scheduling.SlotQuery(start + timedelta(days=2), start + timedelta(days=6)),
                                 limit=1)[0]
    with db.reading() as s:
        patient_id = s.scalars(select(Patient.id)).first()
    scheduling.book(db, patient_id=patient_id, slot_id=slot.id, actor="staff:1", now=start - timedelta(days=30))
    contact = _contact(db, "393338880009")
    with db.transaction() as s:
        for n, (arrived, after) in enumerate(((start, 0.4), (start + timedelta(seconds=20), 4.0))):
            s.add(InboundMessage(wamid=f"wamid.metrics.{n}", contact_id=contact, phone_number_id="1", type="text",
                                 payload={}, rasa_text="ciao", sent_at=arrived, received_at=arrived))
            s.add(_outbound(contact, arrived + timedelta(seconds=after), "bot"))

    def histogram() -> dict[str, float]:
        found = samples(metrics.exposition(_registry(collector)).decode())
        return {dict(labels).get("le", name): value for (name, labels), value in found.items()
                if name.startswith("clinic_webhook_reply_seconds")}

    assert histogram()["clinic_webhook_reply_seconds_count"] == 0  # not settled yet: the bot may still answer
    clock[0] = start + timedelta(minutes=5)
    shown = histogram()
    assert (shown["0.5"], shown["3.0"], shown["5.0"], shown["+Inf"]) == (1, 1, 2, 2)
    assert shown["clinic_webhook_reply_seconds_sum"] == 4.4
    assert histogram()["+Inf"] == 2  # counted once, however often scraped
    backlog = samples(metrics.exposition(_registry(collector)).decode())[("clinic_outreach_backlog", ())]
    assert backlog == 1


def _registry(collector):
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    registry.register(collector)
    return registry


def test_the_outreach_worker_serves_metrics_on_its_port(db, tmp_path):
    port = free_port()
    env = {**os.environ, "DATABASE_URL": db.url, "OUTREACH_METRICS_PORT": str(port),
           "OUTREACH_INTERVAL_SECONDS": "0.5", "WHATSAPP_API_BASE_URL": "http://127.0.0.1:9"}
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        worker = subprocess.Popen([CLINIC, "outreach", "run"], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        def up() -> bool:
            assert worker.poll() is None, log.read_text()
            try:
                return requests.get(f"http://127.0.0.1:{port}/metrics", timeout=1).ok
            except requests.RequestException:
                return False

        wait_until(up, timeout=60, interval=0.2, what="the worker's metrics")
        found = samples(requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)
        assert found[("clinic_open_tickets", (("priority", "urgent"),))] == 0
        assert found[("clinic_outreach_backlog", ())] == 0
    finally:
        worker.terminate()
        worker.wait(timeout=60)


def test_the_webhook_ingest_and_the_fhir_api_serve_the_same_figures(db, tmp_path):
    handoff.open_ticket(db, _contact(db, "393338880009"), "emergency")
    env = {**os.environ, "DATABASE_URL": db.url, "METRICS_TOKEN": "scrape-me", "MEDIA_DIR": str(tmp_path)}
    for module in ("clinic.whatsapp.ingest", "clinic.fhir"):
        port = free_port()
        with (tmp_path / f"{module}.log").open("w") as log:
            process = subprocess.Popen([sys.executable, "-m", module, "--port", str(port)], env=env, stdout=log,
                                       stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}/metrics"

            def up(url=url):
                try:
                    return requests.get(url, timeout=2).status_code
                except requests.ConnectionError:
                    return None

            assert wait_until(up, timeout=60) == 401  # the token is asked for
            answer = requests.get(url, headers={"Authorization": "Bearer scrape-me"}, timeout=10)
            assert samples(answer.text)[("clinic_open_tickets", (("priority", "urgent"),))] == 1, module
        finally:
            process.terminate()
            process.wait(timeout=30)
