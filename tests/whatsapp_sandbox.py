"""Pytest plugin: the WhatsApp sandbox as a real HTTP service, and a webhook receiver that checks signatures.

Loaded from tests/conftest.py (`pytest_plugins`). Any test module can ask for:

- `sandbox` (session): the sandbox running in a subprocess on a free port, with a `Sandbox` helper
  (Graph config, inject patient messages, read what a patient received, faults, clock). It is reset
  before every test that uses it, so no state leaks between tests.
- `webhook_receiver` (function): a local HTTP server standing in for the bot; the sandbox's webhook
  URL points at it for that test. It records each POST and whether `X-Hub-Signature-256` was right.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import requests

from clinic.whatsapp.types import GraphConfig

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "sandbox-test-token"
APP_SECRET = "sandbox-test-app-secret"
VERIFY_TOKEN = "sandbox-test-verify-token"
PHONE_NUMBER_ID = "100000000000001"
API_VERSION = "v23.0"
NOWHERE = "http://127.0.0.1:9/no-webhook-receiver"  # the discard port: deliveries fail fast
# What a test starts from: no webhook retries (a missing receiver costs nothing), Meta's limits otherwise.
TEST_DEFAULTS = {"webhook_retries": 0, "webhook_timeout": 5.0}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], object], timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
    """Poll `check` until it returns something truthy; fail the test with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


@dataclass
class Received:
    """One webhook POST as the receiver saw it."""

    headers: dict[str, str]
    body: bytes
    signature_ok: bool

    @property
    def json(self) -> dict:
        return json.loads(self.body)

    @property
    def values(self) -> list[dict]:
        return [change["value"] for entry in self.json.get("entry", []) for change in entry.get("changes", [])]


class WebhookReceiver:
    """A stand-in bot endpoint: records webhooks, checks signatures, answers the GET handshake."""

    def __init__(self, app_secret: str = APP_SECRET, verify_token: str = VERIFY_TOKEN):
        self.app_secret = app_secret
        self.verify_token = verify_token
        self.status = 200
        self.delay = 0.0
        self.gate: threading.Event | None = None  # set to a cleared Event to hold every POST until it is set
        self.received: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                expected = "sha256=" + hmac.new(receiver.app_secret.encode(), body, hashlib.sha256).hexdigest()
                given = self.headers.get("X-Hub-Signature-256", "")
                item = Received(dict(self.headers), body, hmac.compare_digest(expected, given))
                if receiver.delay:
                    time.sleep(receiver.delay)
                if receiver.gate is not None:
                    receiver.gate.wait(30)
                with receiver._lock:
                    receiver.received.append(item)
                status = receiver.status if item.signature_ok else 403
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:  # noqa: N802
                query = parse_qs(urlparse(self.path).query)
                ok = query.get("hub.mode") == ["subscribe"] and query.get("hub.verify_token") == [receiver.verify_token]
                body = query.get("hub.challenge", [""])[0].encode() if ok else b"forbidden"
                self.send_response(200 if ok else 403)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                """Quiet: webhook bodies hold patient data."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/whatsapp/webhook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def messages(self) -> list[dict]:
        """Every `messages[]` item received so far (duplicates included)."""
        return [m for r in self.snapshot() for v in r.values for m in v.get("messages", [])]

    def statuses(self, wamid: str | None = None) -> list[dict]:
        """Every `statuses[]` item received so far, optionally for one message."""
        items = [s for r in self.snapshot() for v in r.values for s in v.get("statuses", [])]
        return [s for s in items if wamid is None or s["id"] == wamid]

    def wait_messages(self, count: int = 1, timeout: float = 10.0) -> list[dict]:
        return wait_until(lambda: (m := self.messages()) and len(m) >= count and m, timeout,
                          what=f"{count} message webhook(s)")

    def wait_statuses(self, wamid: str, count: int = 1, timeout: float = 10.0) -> list[dict]:
        return wait_until(lambda: (s := self.statuses(wamid)) and len(s) >= count and s, timeout,
                          what=f"{count} status webhook(s)")


class Sandbox:
    """A running sandbox and the test API around it (every call is real HTTP)."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.access_token = TOKEN
        self.app_secret = APP_SECRET
        self.verify_token = VERIFY_TOKEN
        self.phone_number_id = PHONE_NUMBER_ID
        self.api_version = API_VERSION
        self.default_webhook_url = NOWHERE
        self.default_options = dict(TEST_DEFAULTS)
        self.http = requests.Session()

    # --- configuration --------------------------------------------------------------------
    @property
    def config(self) -> GraphConfig:
        """The `GraphConfig` a WhatsApp client needs to talk to this sandbox."""
        return GraphConfig(
            api_base_url=self.base_url,
            api_version=self.api_version,
            phone_number_id=self.phone_number_id,
            access_token=self.access_token,
            app_secret=self.app_secret,
            verify_token=self.verify_token,
        )

    @property
    def env(self) -> dict[str, str]:
        """Environment variables that point clinic settings (bot, workers) at this sandbox."""
        return {
            "WHATSAPP_API_BASE_URL": self.base_url,
            "WHATSAPP_API_VERSION": self.api_version,
            "WHATSAPP_PHONE_NUMBER_ID": self.phone_number_id,
            "WHATSAPP_ACCESS_TOKEN": self.access_token,
            "WHATSAPP_APP_SECRET": self.app_secret,
            "WHATSAPP_VERIFY_TOKEN": self.verify_token,
        }

    @property
    def messages_url(self) -> str:
        return self.config.messages_url

    @property
    def media_url(self) -> str:
        return self.config.media_url

    def _call(self, method: str, path: str, **kwargs) -> dict | list:
        try:
            reply = self.http.request(method, self.base_url + path, timeout=60, **kwargs)
        except requests.ConnectionError:
            # Sanic closes a keep-alive connection after 5 idle seconds; a request sent on it at that
            # moment is reset unread (it failed CI once): once more, on a fresh connection
            reply = self.http.request(method, self.base_url + path, timeout=60, **kwargs)
        if reply.status_code >= 400:
            raise AssertionError(f"sandbox {method} {path} -> {reply.status_code}: {reply.text[:500]}")
        return reply.json()

    def reset(self) -> None:
        """Forget every patient, message, fault and option change; back to the test defaults."""
        self._call("POST", "/_sandbox/reset")
        self.configure(webhook_url=self.default_webhook_url, **self.default_options)

    def configure(self, **options) -> dict:
        """Change run-time options (see docs/sandbox.md): webhook_url, statuses, duplicate_webhooks, limits…"""
        return self._call("PUT", "/_sandbox/config", json=options)

    def set_webhook_url(self, url: str) -> None:
        self.configure(webhook_url=url)

    def add_templates(self, templates: dict) -> dict:
        return self._call("PUT", "/_sandbox/templates", json=templates)

    # --- the Graph API, as the bot calls it ------------------------------------------------
    def send(self, payload: dict, token: str | None = None) -> requests.Response:
        """POST /messages with the bot's token (or `token`); the raw response, for status and body."""
        headers = {"Authorization": f"Bearer {token or self.access_token}"}
        return self.http.post(self.messages_url, json=payload, headers=headers, timeout=60)

    def send_text(self, to: str, body: str, **extra) -> requests.Response:
        return self.send({"messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": body}, **extra})

    def upload(self, content: bytes, mime_type: str, filename: str = "file") -> requests.Response:
        return self.http.post(
            self.media_url,
            headers={"Authorization": f"Bearer {self.access_token}"},
            files={"file": (filename, content, mime_type)},
            data={"type": mime_type, "messaging_product": "whatsapp"},
            timeout=60,
        )

    # --- patients ---------------------------------------------------------------------------
    def inject(self, spec: dict | None = None, *, wait: bool = True, **fields) -> dict:
        """One patient message to the bot (`{"from", "type", ...}`, see docs/sandbox.md); returns its id too."""
        return self._call("POST", "/_sandbox/inject", json={**(spec or {}), **fields, "wait": wait})

    def inject_many(self, specs: list[dict], *, batch: bool = False, duplicate: bool = False,
                    wait: bool = True) -> dict:
        return self._call("POST", "/_sandbox/inject",
                          json={"messages": specs, "batch": batch, "duplicate": duplicate, "wait": wait})

    def say(self, phone: str, text: str, name: str = "Test Patient", **fields) -> str:
        """The patient writes `text`; returns the inbound wamid (the 24-hour window opens)."""
        return self.inject(**{"from": phone, "name": name, "type": "text", "text": text, **fields})["messages"][0]["id"]

    def tap_button(self, phone: str, button_id: str, title: str, context: str | None = None, **fields) -> str:
        """The patient taps a reply button (`interactive.button_reply`); returns the inbound wamid."""
        spec = {"from": phone, "type": "button_reply", "id": button_id, "title": title, "context": context}
        return self.inject(**spec, **fields)["messages"][0]["id"]

    def pick_row(self, phone: str, row_id: str, title: str, context: str | None = None, **fields) -> str:
        """The patient picks a list row (`interactive.list_reply`)."""
        spec = {"from": phone, "type": "list_reply", "id": row_id, "title": title, "context": context}
        return self.inject(**spec, **fields)["messages"][0]["id"]

    def tap_quick_reply(self, phone: str, payload: str, text: str, context: str | None = None, **fields) -> str:
        """The patient taps a template's quick-reply button (`button` with its payload)."""
        spec = {"from": phone, "type": "button", "payload": payload, "text": text, "context": context}
        return self.inject(**spec, **fields)["messages"][0]["id"]

    def send_media(self, phone: str, kind: str, content: bytes, mime_type: str, filename: str | None = None,
                   caption: str | None = None, **fields) -> str:
        """The patient sends a photo, document, audio, voice note, video or sticker."""
        spec = {"from": phone, "type": kind, "content_base64": base64.b64encode(content).decode(),
                "mime_type": mime_type, "filename": filename, "caption": caption}
        return self.inject(**spec, **fields)["messages"][0]["id"]

    def last_received(self, who: str) -> dict:
        """The latest message the patient received (fails the test when there is none)."""
        items = self.received(who)
        assert items, "the patient received nothing"
        return items[-1]

    def patient(self, who: str) -> dict:
        return self._call("GET", f"/_sandbox/patients/{who}")

    def set_patient(self, who: str, **fields) -> dict:
        """name, user_id, last_inbound_at (epoch), last_inbound_hours_ago, undeliverable, hide_phone."""
        return self._call("PUT", f"/_sandbox/patients/{who}", json=fields)

    def open_window(self, who: str) -> dict:
        return self.set_patient(who, last_inbound_hours_ago=0)

    def close_window(self, who: str) -> dict:
        return self.set_patient(who, last_inbound_hours_ago=25)

    def received(self, who: str) -> list[dict]:
        """What the patient received: Graph request body, view, wamid, status history, times."""
        return self._call("GET", f"/_sandbox/patients/{who}/received")

    def sent(self, who: str) -> list[dict]:
        """What the patient sent (the webhook `messages[]` items)."""
        return self._call("GET", f"/_sandbox/patients/{who}/sent")

    def wait_received(self, who: str, count: int = 1, timeout: float = 10.0) -> list[dict]:
        def check():
            try:
                items = self.received(who)
            except AssertionError:
                return None
            return items if len(items) >= count else None

        return wait_until(check, timeout, what=f"{count} message(s) to a patient")

    def message(self, wamid: str) -> dict:
        return self._call("GET", f"/_sandbox/messages/{wamid}")

    def mark_read(self, wamid: str) -> dict:
        return self._call("POST", f"/_sandbox/messages/{wamid}/read")

    def status(self, wamid: str, status: str, code: int | None = None, copies: int = 1) -> dict:
        """Send any status webhook for a message the bot sent, in any order."""
        return self._call("POST", f"/_sandbox/messages/{wamid}/status",
                          json={"status": status, "code": code, "copies": copies, "wait": True})

    # --- faults, clock, records ----------------------------------------------------------------
    def fault(self, kind: str, code: int | None = None, times: int = 1, recipient: str | None = None,
              **extra) -> dict:
        """The next `times` matching sends fail: http_429, http_500, http_503, timeout, error, failed."""
        return self._call("POST", "/_sandbox/faults",
                          json={"kind": kind, "code": code, "times": times, "recipient": recipient, **extra})

    def clear_faults(self) -> None:
        self._call("DELETE", "/_sandbox/faults")

    def advance_clock(self, seconds: float) -> dict:
        return self._call("POST", "/_sandbox/clock", json={"advance": seconds})

    def webhooks(self, kind: str | None = None, settle: bool = True) -> list[dict]:
        """Every webhook delivery with its attempts and HTTP statuses (by default once the queue is drained)."""
        if settle:
            self._call("POST", "/_sandbox/webhooks/wait")
        return self._call("GET", "/_sandbox/webhooks" + (f"?kind={kind}" if kind else ""))

    def rejected(self) -> list[dict]:
        """Graph API errors the sandbox answered, newest last."""
        return self._call("GET", "/_sandbox/rejected")


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory) -> Iterator[Sandbox]:
    """The sandbox in a subprocess on a free port (real HTTP), stopped at the end of the session."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    helper = Sandbox(base_url)
    env = {
        **os.environ,
        **helper.env,
        "WHATSAPP_WEBHOOK_URL": NOWHERE,
        "PYTHONUNBUFFERED": "1",
    }
    log_path = tmp_path_factory.mktemp("sandbox") / "sandbox.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "clinic.sandbox", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )

    def healthy() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"sandbox exited with {process.returncode}; see {log_path}")
        try:
            return requests.get(base_url + "/_sandbox/health", timeout=1).ok
        except requests.RequestException:
            return False

    try:
        wait_until(healthy, timeout=60, interval=0.2, what="the sandbox to start")
        helper.reset()
        yield helper
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(autouse=True)
def _sandbox_reset(request) -> None:
    """Reset the sandbox before each test that uses it (and only those: others never start it)."""
    if "sandbox" in request.fixturenames:
        request.getfixturevalue("sandbox").reset()


@pytest.fixture
def webhook_receiver(sandbox) -> Iterator[WebhookReceiver]:
    """A signature-checking receiver; the sandbox delivers this test's webhooks to it."""
    receiver = WebhookReceiver(sandbox.app_secret, sandbox.verify_token)
    sandbox.set_webhook_url(receiver.url)
    yield receiver
    receiver.close()
