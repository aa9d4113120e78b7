"""The inbox in a subprocess on a free port (real HTTP), over a fresh SQLite file; a signed-in client helper."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from clinic.models import Contact, ContactPatient, Patient, Relationship, StaffRole, StaffUser, utcnow
from clinic.staff import hash_password
from tests.whatsapp_sandbox import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct-horse-battery"
_HASH: list[str] = []
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def add_nurse(db, username: str, role: StaffRole = StaffRole.nurse) -> int:
    if not _HASH:
        _HASH.append(hash_password(PASSWORD))
    with db.transaction() as s:
        user = StaffUser(username=username, password_hash=_HASH[0], role=role)
        s.add(user)
        s.flush()
        return user.id


def add_contact(db, wa_id: str, name: str = "Maria Bianchi", hours_ago: float | None = 1.0) -> int:
    with db.transaction() as s:
        contact = Contact(wa_id=wa_id, profile_name=name, language="it",
                          last_inbound_at=None if hours_ago is None else utcnow() - timedelta(hours=hours_ago))
        patient = Patient(first_name="Giulia", last_name="Bianchi", date_of_birth=date(2015, 5, 5))
        s.add_all([contact, patient])
        s.flush()
        s.add(ContactPatient(contact_id=contact.id, patient_id=patient.id, relation=Relationship.parent))
        return contact.id


class Inbox:
    """A running inbox process."""

    def __init__(self, base_url: str, process: subprocess.Popen, log: Path) -> None:
        self.base_url, self.process, self.log = base_url, process, log

    def client(self, username: str | None = None, password: str = PASSWORD) -> InboxClient:
        client = InboxClient(self.base_url)
        if username:
            answer = client.login(username, password)
            assert answer.status_code == 303, answer.text[:300]
        return client


class InboxClient:
    """requests.Session that knows the inbox's forms: sign-in and CSRF tokens."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = requests.Session()
        self.csrf = ""

    def get(self, path: str, **kwargs) -> requests.Response:
        answer = self.http.get(self.base_url + path, allow_redirects=False, timeout=30, **kwargs)
        found = _CSRF.search(answer.text)
        if found:
            self.csrf = found.group(1)
        return answer

    def post(self, path: str, data: dict | None = None, csrf: bool = True, files: dict | None = None
             ) -> requests.Response:
        data = dict(data or {})
        if csrf:
            data.setdefault("csrf_token", self.csrf)
        return self.http.post(self.base_url + path, data=data, files=files, allow_redirects=False, timeout=60)

    def login(self, username: str, password: str) -> requests.Response:
        self.get("/login")
        answer = self.post("/login", {"username": username, "password": password})
        if answer.status_code == 303:
            self.get("/")  # picks up the session's CSRF token
        return answer


@pytest.fixture
def start_inbox(db, tmp_path) -> Iterator:
    """Start the inbox on `db` with extra environment variables; stopped at the end of the test."""
    started: list[subprocess.Popen] = []

    def start(**env: str) -> Inbox:
        port = free_port()
        log = tmp_path / f"inbox-{port}.log"
        full_env = {**os.environ, "DATABASE_URL": db.url, "INBOX_COOKIE_SECURE": "false",
                    "WHATSAPP_API_BASE_URL": f"http://127.0.0.1:{free_port()}", "RASA_URL": "http://127.0.0.1:9",
                    "PYTHONUNBUFFERED": "1", **env}
        with open(log, "wb") as out:
            process = subprocess.Popen([sys.executable, "-m", "clinic.inbox", "--port", str(port)], cwd=ROOT,
                                       env=full_env, stdout=out, stderr=subprocess.STDOUT)
        started.append(process)
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"inbox exited: {log.read_text()[-2000:]}")
            try:
                return requests.get(base + "/login", timeout=1).ok
            except requests.RequestException:
                return False

        wait_until(up, timeout=30, interval=0.1, what="the inbox to start")
        return Inbox(base, process, log)

    yield start
    for process in started:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


class FakeRasa:
    """A real HTTP server standing in for Rasa's tracker API: records what the inbox posts."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, list]] = []
        self.raw: list[tuple[dict, bytes]] = []  # headers and body as received
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                owner.requests.append((self.path, json.loads(body)))
                owner.raw.append((dict(self.headers), body))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_rasa() -> Iterator[FakeRasa]:
    rasa = FakeRasa()
    yield rasa
    rasa.close()
