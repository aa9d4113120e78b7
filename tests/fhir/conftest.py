"""The FHIR process (`python -m clinic.fhir`) on a free port over a real database; an EHR-like client."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from clinic.db import Database
from clinic.fhir import clients
from tests.whatsapp_sandbox import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
FHIR_JSON = "application/fhir+json"


class Ehr:
    """An external system talking FHIR to the clinic with its API key."""

    def __init__(self, base: str, key: str | None) -> None:
        self.base, self.http = base, requests.Session()
        self.http.headers["Accept"] = FHIR_JSON
        if key:
            self.http.headers["Authorization"] = f"Bearer {key}"

    def get(self, path: str, **params) -> requests.Response:
        return self.http.get(f"{self.base}/fhir/{path}", params=params, timeout=30)

    def search(self, path: str, params: list[tuple[str, str]]) -> requests.Response:
        return self.http.get(f"{self.base}/fhir/{path}", params=params, timeout=30)

    def post(self, path: str, body) -> requests.Response:
        return self.http.post(f"{self.base}/fhir/{path}", json=body, headers={"Content-Type": FHIR_JSON}, timeout=30)

    def put(self, path: str, body) -> requests.Response:
        return self.http.put(f"{self.base}/fhir/{path}", json=body, headers={"Content-Type": FHIR_JSON}, timeout=30)

    def patch(self, path: str, ops) -> requests.Response:
        return self.http.patch(f"{self.base}/fhir/{path}", json=ops,
                               headers={"Content-Type": "application/json-patch+json"}, timeout=30)


class FhirServer:
    def __init__(self, base: str, db: Database) -> None:
        self.base, self.db = base, db

    def client(self, name: str = "ehr") -> Ehr:
        return Ehr(self.base, clients.add_client(self.db, name))

    def anonymous(self, key: str | None = None) -> Ehr:
        return Ehr(self.base, key)


def start_fhir(db: Database, log: Path, **env: str) -> tuple[FhirServer, subprocess.Popen]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    full_env = {**os.environ, "DATABASE_URL": db.url, "FHIR_BASE_URL": base, "PYTHONUNBUFFERED": "1", **env}
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "clinic.fhir", "--port", str(port)], cwd=ROOT,
                                   env=full_env, stdout=out, stderr=subprocess.STDOUT)

    def up() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"clinic.fhir exited: {log.read_text()[-2000:]}")
        try:
            return requests.get(base + "/fhir/metadata", timeout=1).ok
        except requests.RequestException:
            return False

    wait_until(up, timeout=30, interval=0.1, what="the FHIR API to start")
    return FhirServer(base, db), process


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture
def fhir(any_demo_db, tmp_path) -> Iterator[FhirServer]:
    """The FHIR API over the demo clinic, on SQLite and on PostgreSQL."""
    server, process = start_fhir(any_demo_db, tmp_path / "fhir.log")
    yield server
    stop(process)
