"""The real stack, started once per test run: a seeded database, the action server and the Rasa
server with the cached model, talking over real HTTP. Its WhatsApp channel (credentials.yml, with
the WHATSAPP_* variables) talks to the sandbox; the `whatsapp` fixture points the sandbox's webhooks
at it for one test."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from clinic import migrate
from clinic.db import Database
from clinic.demo import seed

ROOT = Path(__file__).resolve().parents[2]
RASA_TOKEN = "e2e-rasa-token"  # Rasa's HTTP API (the inbox hands conversations back through it)
STARTUP_SECONDS = 300  # Rasa needs about a minute on 2 cores; leave room for a loaded CI machine


@dataclass(frozen=True)
class Stack:
    rasa_url: str
    actions_url: str
    database_url: str
    media_dir: Path
    rasa_token: str
    results_dir: Path  # the stack's RESULTS_DIR: a test registering a result sets it too

    @property
    def webhook_url(self) -> str:
        """Where Meta (here: the sandbox) delivers WhatsApp webhooks."""
        return f"{self.rasa_url}/webhooks/whatsapp/webhook"

    def say(self, sender: str, text: str) -> list[dict]:
        """What the bot answers a patient, through Rasa's REST channel."""
        reply = requests.post(f"{self.rasa_url}/webhooks/rest/webhook",
                              json={"sender": sender, "message": text}, timeout=60)
        reply.raise_for_status()
        return reply.json()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{url} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(url, timeout=2).ok:
                return
        except requests.ConnectionError:
            pass
        time.sleep(1)
    pytest.fail(f"{url} not up after {STARTUP_SECONDS}s:\n{log.read_text()[-3000:]}")


def start(command: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def stop(*processes: subprocess.Popen) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


@contextlib.contextmanager
def serving(command: list[str], env: dict, log: Path, up_url: str) -> Iterator[None]:
    """A process of the stack, up (its `up_url` answers) for the block, stopped after it."""
    process = start(command, env, log)
    try:
        wait_until_up(up_url, process, log)
        yield
    finally:
        stop(process)


@pytest.fixture(scope="session")
def stack(rasa_model, sandbox, tmp_path_factory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("stack")
    database_url = f"sqlite:///{folder / 'clinic.db'}"
    migrate.upgrade(database_url)
    seed(Database(database_url))
    rasa_port, actions_port = free_port(), free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "ACTION_ENDPOINT_URL": f"http://127.0.0.1:{actions_port}/webhook",
        "RASA_TELEMETRY_ENABLED": "false",
        **sandbox.env,  # credentials.yml's ${WHATSAPP_*}: the channel and its client talk to the sandbox
        "MEDIA_DIR": str(folder / "media"),
        "RESULTS_DIR": str(folder / "results"),
    }
    bin_dir = Path(sys.executable).parent
    actions = start([str(bin_dir / "rasa"), "run", "actions", "--port", str(actions_port), "--actions", "actions"],
                    env, folder / "actions.log")
    rasa = start([str(bin_dir / "rasa"), "run", "--enable-api", "--auth-token", RASA_TOKEN, "--port", str(rasa_port),
                  "--model", str(rasa_model), "--credentials", "credentials.yml", "--endpoints", "endpoints.yml"],
                 env, folder / "rasa.log")
    try:
        wait_until_up(f"http://127.0.0.1:{actions_port}/health", actions, folder / "actions.log")
        wait_until_up(f"http://127.0.0.1:{rasa_port}/status?token={RASA_TOKEN}", rasa, folder / "rasa.log")
        yield Stack(f"http://127.0.0.1:{rasa_port}", f"http://127.0.0.1:{actions_port}", database_url,
                    folder / "media", RASA_TOKEN, folder / "results")
    finally:
        stop(rasa, actions)


@pytest.fixture
def whatsapp(stack, sandbox):
    """The sandbox, delivering this test's signed webhooks to the running stack's WhatsApp channel."""
    sandbox.set_webhook_url(stack.webhook_url)
    return sandbox


@pytest.fixture(scope="session")
def ingest(stack, sandbox, tmp_path_factory) -> Iterator[str]:
    """The webhook ingest (`python -m clinic.whatsapp.ingest`, as `make run` starts it) on the stack's
    database, nudging the stack's Rasa: its webhook URL."""
    folder = tmp_path_factory.mktemp("ingest")
    port = free_port()
    env = {**os.environ, "DATABASE_URL": stack.database_url, **sandbox.env, "RASA_URL": stack.rasa_url,
           "WHATSAPP_INGEST_PORT": str(port), "MEDIA_DIR": str(stack.media_dir)}
    with serving([sys.executable, "-m", "clinic.whatsapp.ingest"], env, folder / "ingest.log",
                 f"http://127.0.0.1:{port}/webhooks/whatsapp/"):
        yield f"http://127.0.0.1:{port}/webhooks/whatsapp/webhook"


@pytest.fixture
def whatsapp_via_ingest(ingest, sandbox):
    """The sandbox, delivering this test's webhooks to the ingest in front of the stack (as `make run`)."""
    sandbox.set_webhook_url(ingest)
    return sandbox


@pytest.fixture(scope="session")
def inbox(stack, sandbox, tmp_path_factory) -> Iterator[str]:
    """The nurse inbox on the stack's database, sending through the sandbox, handing back to Rasa."""
    folder = tmp_path_factory.mktemp("inbox")
    port = free_port()
    env = {**os.environ, "DATABASE_URL": stack.database_url, **sandbox.env, "RASA_URL": stack.rasa_url,
           "RASA_TOKEN": stack.rasa_token, "INBOX_COOKIE_SECURE": "false", "MEDIA_DIR": str(stack.media_dir),
           "RESULTS_DIR": str(stack.results_dir)}
    with serving([sys.executable, "-m", "clinic.inbox", "--port", str(port)], env, folder / "inbox.log",
                 f"http://127.0.0.1:{port}/login"):
        yield f"http://127.0.0.1:{port}"
