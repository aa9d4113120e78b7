"""/metrics of the processes that count what they do themselves, started for real: the action server
(rasa_sdk's plugin hook, `rasa_sdk_plugins`) after real action calls, the webhook worker after real
deliveries to local receivers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from sqlalchemy import text

from clinic import hooks
from clinic.models import utcnow
from clinic.settings import settings
from tests.integration.conftest import Receiver
from tests.kpi.test_metrics import samples
from tests.whatsapp_sandbox import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TOKEN = {"Authorization": "Bearer scrape-me"}


@contextmanager
def running(command: list[str], env: dict, log: Path, url: str) -> Iterator[None]:
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
    try:
        def up() -> bool:
            assert process.poll() is None, log.read_text()
            try:
                return requests.get(url, timeout=2).status_code == 401  # up, and asking for the token
            except requests.ConnectionError:
                return False

        wait_until(up, timeout=120, interval=0.3, what=url)
        yield
    finally:
        process.terminate()
        process.wait(timeout=60)


def scrape(url: str) -> dict:
    answer = requests.get(url, headers=TOKEN, timeout=10)
    assert answer.status_code == 200, answer.text
    return samples(answer.text)


def action_call(name: str, sender: str = "393331234567") -> dict:
    tracker = {"sender_id": sender, "slots": {"language": "it"}, "events": [], "paused": False,
               "followup_action": None, "active_loop": {}, "latest_action_name": "action_listen",
               "latest_message": {"text": "ciao", "intent": {"name": "greet", "confidence": 1.0}, "entities": []}}
    return {"next_action": name, "sender_id": sender, "tracker": tracker, "domain": {}, "version": "3.6.21"}


def test_the_action_server_counts_and_times_each_action(db, tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"DATABASE_URL": db.url, "METRICS_TOKEN": "scrape-me", "RASA_TELEMETRY_ENABLED": "false"}
    command = [str(BIN / "rasa"), "run", "actions", "--port", str(port), "--actions", "actions"]
    with running(command, env, tmp_path / "actions.log", f"{base}/metrics"):
        before = scrape(f"{base}/metrics")
        assert ("clinic_action_runs_total", (("action", "action_identify_sender"), ("status", "200"))) not in before

        for _ in range(2):
            answer = requests.post(f"{base}/webhook", json=action_call("action_identify_sender"), timeout=30)
            assert answer.status_code == 200
            assert {"event": "slot", "name": "language"}.items() <= answer.json()["events"][0].items()
        assert requests.post(f"{base}/webhook", json=action_call("action_no_such_thing"), timeout=30).status_code == 404
        with db.transaction() as s:  # the core's database breaks under the action: the boundary catches it
            s.execute(text("ALTER TABLE contacts RENAME TO contacts_away"))
        answer = requests.post(f"{base}/webhook", json=action_call("action_identify_sender"), timeout=30)
        assert [m["response"] for m in answer.json()["responses"]] == ["utter_something_went_wrong"]

        found = scrape(f"{base}/metrics")
    assert found[("clinic_action_runs_total", (("action", "action_identify_sender"), ("status", "200")))] == 3
    assert found[("clinic_action_runs_total", (("action", "unknown"), ("status", "404")))] == 1
    assert ("clinic_action_runs_total", (("action", "action_no_such_thing"), ("status", "404"))) not in found
    assert found[("clinic_action_failures_total", (("action", "action_identify_sender"),))] == 1
    assert found[("clinic_action_seconds_count", (("action", "action_identify_sender"),))] == 3
    assert found[("clinic_action_seconds_sum", (("action", "action_identify_sender"),))] > 0
    log = (tmp_path / "actions.log").read_text()
    assert "393331234567" not in log and "ciao" not in log


def test_several_action_server_workers_add_up_their_counts(db, tmp_path):
    """Sanic workers are separate processes: in prometheus_client's multiprocess mode every scrape, whichever
    worker answers it, sees all the runs."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    (tmp_path / "prometheus").mkdir()
    env = {"DATABASE_URL": db.url, "METRICS_TOKEN": "scrape-me", "RASA_TELEMETRY_ENABLED": "false",
           "ACTION_SERVER_SANIC_WORKERS": "2", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus")}
    command = [str(BIN / "rasa"), "run", "actions", "--port", str(port), "--actions", "actions"]
    with running(command, env, tmp_path / "actions.log", f"{base}/metrics"):
        for _ in range(6):
            answer = requests.post(f"{base}/webhook", json=action_call("action_identify_sender"), timeout=30)
            assert answer.status_code == 200
        seen = {scrape(f"{base}/metrics")[
            ("clinic_action_runs_total", (("action", "action_identify_sender"), ("status", "200")))] for _ in range(6)}
    assert seen == {6}


def test_the_webhook_worker_counts_deliveries_failures_and_its_backlog(db, tmp_path, monkeypatch):
    good, broken = Receiver(), Receiver()
    broken.answers = [500]
    monkeypatch.setenv("WEBHOOK_URLS", f"{good.url},{broken.url}")
    settings.cache_clear()
    with db.transaction() as s:  # one booking event, one delivery per receiver
        hooks.booking_event(s, "booked", {"appointment_id": 1, "status": "booked"}, utcnow())
    port = free_port()
    env = {"DATABASE_URL": db.url, "METRICS_TOKEN": "scrape-me", "HOOKS_METRICS_PORT": str(port),
           "WEBHOOK_MAX_ATTEMPTS": "2", "WEBHOOK_RETRY_BASE_SECONDS": "3600", "WEBHOOK_INTERVAL_SECONDS": "0.2"}
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        with running([sys.executable, "-m", "clinic.hooks"], env, tmp_path / "hooks.log", url):
            found = wait_until(lambda: (f := scrape(url))[("clinic_hook_attempt_seconds_count", ())] == 2 and f,
                               timeout=30, interval=0.2, what="two attempts")
            assert requests.get(url.replace("/metrics", "/other"), headers=TOKEN, timeout=5).status_code == 404
    finally:
        good.close()
        broken.close()
    assert found[("clinic_hook_attempts_total", (("outcome", "delivered"),))] == 1
    assert found[("clinic_hook_attempts_total", (("outcome", "retrying"),))] == 1  # the 500: again in an hour
    assert found[("clinic_hook_attempts_total", (("outcome", "failed"),))] == 0
    assert found[("clinic_hook_deliveries", (("status", "delivered"),))] == 1
    assert found[("clinic_hook_deliveries", (("status", "pending"),))] == 1  # the backlog
    assert found[("clinic_hook_deliveries", (("status", "failed"),))] == 0
    assert found[("clinic_hook_attempt_seconds_sum", ())] > 0
    assert (len(good.received), len(broken.received)) == (1, 1)


def test_the_action_server_waits_for_a_busy_rasa_to_write_its_request(db, tmp_path):
    """Rasa connects for each action and writes when its event loop gets to it, seconds later under load:
    the connection must still be open then (Sanic's default closes it after 5 silent seconds)."""
    port = free_port()
    env = {"DATABASE_URL": db.url, "METRICS_TOKEN": "scrape-me", "RASA_TELEMETRY_ENABLED": "false"}
    command = [str(BIN / "rasa"), "run", "actions", "--port", str(port), "--actions", "actions"]
    with running(command, env, tmp_path / "actions.log", f"http://127.0.0.1:{port}/metrics"):
        with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
            time.sleep(7)  # a connection opened, then a busy Rasa
            connection.sendall(f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            answer = connection.recv(200)
    assert answer.startswith(b"HTTP/1.1 200")
