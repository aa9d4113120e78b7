"""Hostile webhooks (Hypothesis): a thousand bodies and headers against the real ingest process, and a
few hundred against the Rasa channel's routes mounted in a plain Sanic process (its webhook and the
nudge route), plus hostile verification handshakes. Whatever arrives: never a 5xx, the process stays
up, and nothing is stored unless the signature is right.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from clinic.db import Database
from clinic.models import Contact
from clinic.models import InboundMessage as InboundRow
from clinic.whatsapp.receive import PENDING_SIGNATURE_HEADER, sign_pending
from clinic.whatsapp.webhook import SIGNATURE_HEADER, sign
from tests.whatsapp_sandbox import free_port

ROOT = Path(__file__).resolve().parents[2]
PAYLOADS = Path(__file__).parent / "payloads"
SECRET, VERIFY, NUMBER_ID = "fuzz-app-secret", "fuzz-verify-token", "106540352242922"
EXAMPLES = int(os.environ.get("CLINIC_FUZZ_EXAMPLES", "1000"))

# The channel's route in a plain Sanic app (no Rasa server, no model): a bot that answers nothing.
CHANNEL_APP = """
import sys
from sanic import Sanic
from clinic.whatsapp.channel import WhatsAppInput
from clinic.whatsapp.types import GraphConfig

async def bot(message):
    return None

config = GraphConfig("http://127.0.0.1:9", "v23.0", sys.argv[2], "token", sys.argv[3], sys.argv[4])
app = Sanic("fuzz_channel")
app.blueprint(WhatsAppInput(config).blueprint(bot), url_prefix="/webhooks/whatsapp")
app.run(host="127.0.0.1", port=int(sys.argv[1]), access_log=False, motd=False)
"""


@dataclass
class Target:
    process: subprocess.Popen
    url: str
    db: Database
    log: Path
    http: requests.Session

    def stored(self) -> tuple[int, int]:
        with self.db.reading() as session:
            return (session.scalar(select(func.count()).select_from(InboundRow)),
                    session.scalar(select(func.count()).select_from(Contact)))


def start(command: list[str], db: Database, tmp_path: Path, port: int) -> Target:
    env = {**os.environ, "DATABASE_URL": str(db.engine.url), "WHATSAPP_APP_SECRET": SECRET,
           "WHATSAPP_VERIFY_TOKEN": VERIFY, "WHATSAPP_PHONE_NUMBER_ID": NUMBER_ID, "RASA_URL": "http://127.0.0.1:9",
           "WHATSAPP_INGEST_PORT": str(port), "MEDIA_DIR": str(tmp_path / "media")}
    log = tmp_path / "server.log"
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/webhooks/whatsapp"
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, log.read_text()
        try:
            if requests.get(f"{base}/", timeout=2).ok:
                break
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)
    return Target(process, f"{base}/webhook", db, log, requests.Session())


@pytest.fixture(scope="module")
def targets(tmp_path_factory) -> Iterator[dict[str, Target]]:
    started: dict[str, Target] = {}
    for name in ("ingest", "channel"):
        folder = tmp_path_factory.mktemp(name)
        db = Database(f"sqlite:///{folder / 'clinic.db'}")
        from clinic.models import metadata

        metadata.create_all(db.engine)
        port = free_port()
        command = ([sys.executable, "-m", "clinic.whatsapp.ingest"] if name == "ingest"
                   else [sys.executable, "-c", CHANNEL_APP, str(port), NUMBER_ID, SECRET, VERIFY])
        started[name] = start(command, db, folder, port)
    yield started
    for target in started.values():
        target.process.terminate()
        target.process.wait(timeout=30)
        target.db.dispose()


# --- what arrives -----------------------------------------------------------------------------------

VALID = [json.loads((PAYLOADS / name).read_text(encoding="utf-8")) for name in sorted(os.listdir(PAYLOADS))]
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**18, max_value=10**400),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=50),
    st.sampled_from(["", "0", "-1", "1e309", "9" * 5000, "\x00", "\ud7ff", "text", "image", "system",
                     "interactive", "button", "<script>alert(1)</script>", "' OR 1=1 --", "../../etc/passwd"]),
)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)


def _paths(node, prefix=()) -> list[tuple]:
    """Every place in a JSON document (dict keys and list indexes)."""
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


@st.composite
def mutated_webhooks(draw) -> dict:
    """One of Meta's real payloads with a few of its values, anywhere, replaced by hostile ones."""
    document = copy.deepcopy(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        path = draw(st.sampled_from(_paths(document)))
        if not path:
            continue
        parent = document
        for step in path[:-1]:
            parent = parent[step]
        parent[path[-1]] = draw(json_values)
    return document


bodies = st.one_of(
    mutated_webhooks().map(lambda d: json.dumps(d).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=300),
    st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.integers(min_value=1, max_value=20_000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(min_value=1, max_value=20_000).map(lambda depth: b'{"entry":' * depth + b"1" + b"}" * depth),
    st.just(b'{"entry": [{"changes": [{"value": {"messages": [' + b"{}," * 5000 + b"{}]}}]}]}"),
)
header_text = st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=80)  # as HTTP clients send
signatures = st.one_of(
    st.just("valid"), st.just("valid"), st.none(), header_text,
    st.just("sha256=" + "0" * 64), st.just("sha256=" + "g" * 64), st.just("sha1=" + "0" * 40),
    st.just("SHA256=" + "A" * 64), st.just("sha256=" + "0" * 63), st.just("sha256=" + "0" * 6400),
)
content_types = st.sampled_from([None, "application/json", "text/plain", "application/x-www-form-urlencoded",
                                 "multipart/form-data; boundary=x", "application/json; charset=latin-1"])
extra_headers = st.dictionaries(st.sampled_from(["X-Forwarded-For", "Accept", "X-Hub-Signature", "Cookie",
                                                 "Transfer-Encoding-Ignored", "User-Agent"]), header_text, max_size=3)


FUZZ = settings(deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.large_base_example, HealthCheck.function_scoped_fixture])


def post_hostile(server: Target, url: str, body: bytes, signature: str | None, content_type: str | None,
                 extra: dict, sign_as=lambda body: sign(SECRET, body), header: str = SIGNATURE_HEADER) -> int:
    """POST one hostile request; asserts what must hold whatever it was, returns the status."""
    headers = dict(extra)
    if content_type:
        headers["Content-Type"] = content_type
    signed = signature == "valid"
    if signed:
        headers[header] = sign_as(body)
    elif signature is not None:
        headers[header] = signature
    before = None if signed else server.stored()
    answer = server.http.post(url, data=body, headers=headers, timeout=30)
    assert answer.status_code < 500, (answer.status_code, answer.text[:200])
    assert server.process.poll() is None, server.log.read_text()[-3000:]
    if not signed:
        assert answer.status_code in (403, 413)
        assert server.stored() == before  # nothing stored, no contact created
    return answer.status_code


@settings(FUZZ, max_examples=EXAMPLES)
@given(body=bodies, signature=signatures, content_type=content_types, extra=extra_headers)
def test_the_ingest_never_answers_5xx_nor_stores_anything_without_the_signature(
        targets, body, signature, content_type, extra):
    server = targets["ingest"]
    assert post_hostile(server, server.url, body, signature, content_type, extra) in (200, 400, 403, 413)


@settings(FUZZ, max_examples=max(EXAMPLES // 3, 50))
@given(body=bodies, signature=signatures, content_type=content_types, extra=extra_headers,
       route=st.sampled_from(["webhook", "webhook", "pending"]))
def test_the_rasa_channel_never_answers_5xx_nor_stores_anything_without_the_signature(
        targets, body, signature, content_type, extra, route):
    """The channel's webhook, and the ingest's nudge route (signed over `pending:` + body) beside it."""
    server = targets["channel"]
    if route == "webhook":
        assert post_hostile(server, server.url, body, signature, content_type, extra) in (200, 400, 403, 413)
    else:
        url = server.url.removesuffix("webhook") + "pending"
        status = post_hostile(server, url, body, signature, content_type, extra,
                              sign_as=lambda raw: sign_pending(SECRET, raw), header=PENDING_SIGNATURE_HEADER)
        assert status in (202, 400, 403, 413)


@settings(FUZZ, max_examples=max(EXAMPLES // 5, 50))
@given(query=st.dictionaries(st.sampled_from(["hub.mode", "hub.verify_token", "hub.challenge", "x"]),
                             st.text(max_size=200), max_size=4),
       target=st.sampled_from(["ingest", "channel"]))
@example(query={"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "42"}, target="ingest")
def test_the_verification_handshake_never_answers_5xx_and_echoes_only_for_the_right_token(targets, query, target):
    server = targets[target]
    answer = server.http.get(server.url, params=query, timeout=30)
    right = (query.get("hub.mode") == "subscribe" and query.get("hub.verify_token") == VERIFY
             and query.get("hub.challenge"))
    assert answer.status_code == (200 if right else 403), answer.text[:200]


def test_after_the_storm_both_still_take_a_real_message(targets):
    """The processes are alive and working after the fuzzing: a real signed message is stored."""
    body = json.dumps(VALID[[p.name for p in sorted(PAYLOADS.iterdir())].index("text.json")]).encode()
    for name, server in targets.items():
        before = server.stored()
        answer = server.http.post(server.url, data=body.replace(b"wamid.", b"wamid.after-" + name.encode()),
                                  headers={"X-Hub-Signature-256": sign(SECRET, body.replace(
                                      b"wamid.", b"wamid.after-" + name.encode()))}, timeout=30)
        assert answer.status_code == 200, answer.text
        assert server.stored()[0] == before[0] + 1
        assert "Traceback" not in server.log.read_text()
