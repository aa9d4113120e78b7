"""Production mode with demo secrets: every long-running process of the Procfile (but the sandbox, a
development stand-in) refuses to start and says why."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from clinic.settings import PROJECT_ROOT

BIN = Path(sys.executable).parent
PROCESSES = {
    "ingest": [sys.executable, "-m", "clinic.whatsapp.ingest", "--port", "0"],
    "inbox": [sys.executable, "-m", "clinic.inbox", "--port", "0"],
    "outreach": [str(BIN / "clinic"), "outreach", "run", "--once"],
    "fhir": [sys.executable, "-m", "clinic.fhir"],
    "hooks": [sys.executable, "-m", "clinic.hooks"],
    "actions": [str(BIN / "rasa"), "run", "actions", "--actions", "actions", "--port", "0"],
    # As the Procfile runs it (--enable-api: Rasa starts, and builds its channels, with or without a model).
    "rasa channel": [str(BIN / "rasa"), "run", "--enable-api", "--credentials", "credentials.yml", "--port", "0",
                     "--model", "no-such-model.tar.gz"],
}


def start(command: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(("WHATSAPP_", "ENCRYPTION", "RASA_TOKEN"))}
    environment.update(DATABASE_URL=f"sqlite:///{tmp_path / 'clinic.db'}", RASA_TELEMETRY_ENABLED="false",
                       WHATSAPP_ACCESS_TOKEN="sandbox-access-token", WHATSAPP_APP_SECRET="sandbox-app-secret",
                       WHATSAPP_VERIFY_TOKEN="sandbox-verify-token", WHATSAPP_API_BASE_URL="http://localhost:1",
                       WHATSAPP_API_VERSION="v23.0", WHATSAPP_PHONE_NUMBER_ID="1",
                       ACTION_ENDPOINT_URL="http://localhost:1/webhook", **env)
    return subprocess.run(command, cwd=PROJECT_ROOT, env=environment, capture_output=True, text=True, timeout=180,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("name", PROCESSES)
def test_production_with_demo_secrets_and_no_key_refuses_to_start_naming_the_problems(name, tmp_path):
    done = start(PROCESSES[name], tmp_path, CLINIC_ENV="production", DEMO_MODE="true")
    assert done.returncode != 0
    said = done.stdout + done.stderr
    assert "refusing to start in production" in said
    for problem in ("WHATSAPP_ACCESS_TOKEN", "WHATSAPP_APP_SECRET", "WHATSAPP_VERIFY_TOKEN", "DEMO_MODE",
                    "ENCRYPTION_KEYS is empty", "RASA_TOKEN is empty"):
        assert problem in said, (problem, said[-2000:])
