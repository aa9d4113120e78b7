"""The webhook ingest (`clinic.whatsapp.ingest`) over real HTTP: in-process Sanic apps on free ports,
the ingest beside the `whatsapp` channel (the Rasa side) with a recording bot, or beside a Rasa that
is down or hangs; and once as the real `python -m clinic.whatsapp.ingest` process.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
import requests
from sanic import Sanic
from sqlalchemy import select

from clinic.db import Database
from clinic.models import Contact, InboundStatus, OutboundMessage, OutboundStatus
from clinic.models import InboundMessage as InboundRow
from clinic.whatsapp.ingest import Ingest, create_app, pending_url
from clinic.whatsapp.receive import PENDING_SIGNATURE_HEADER, pending_body, sign_pending
from clinic.whatsapp.types import GraphConfig
from clinic.whatsapp.webhook import sign
from tests.kpi.test_metrics import samples
from tests.whatsapp.test_channel import (
    OUTBOUND,
    PHONE,
    PHONE_NUMBER_ID,
    SECRET,
    VERIFY,
    Bot,
    GraphStub,
    Server,
    free_port,
    payload,
    text_message,
)

ROOT = Path(__file__).resolve().parents[2]
NOWHERE = "http://127.0.0.1:9/webhooks/whatsapp/pending"  # the discard port: a Rasa that is down
_names = itertools.count()
Sanic.test_mode = True


class IngestServer:
    """The ingest's app on a free port, nudging `pending`."""

    def __init__(self, db: Database, pending: str, **options) -> None:
        self.db = db
        config = GraphConfig("http://127.0.0.1:9", "v23.0", PHONE_NUMBER_ID, "token", SECRET, VERIFY)
        self.ingest = Ingest(config, pending_url=pending, db=db, **options)
        self.app = create_app(self.ingest, name=f"whatsapp_ingest_test_{next(_names)}")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/webhooks/whatsapp/webhook"
        self.server = None
        self.http: aiohttp.ClientSession | None = None

    async def start(self) -> IngestServer:
        self.server = await self.app.create_server(host="127.0.0.1", port=self.port, return_asyncio_server=True,
                                                   access_log=False)
        await self.server.startup()
        await self.server.before_start()
        await self.server.after_start()
        self.http = aiohttp.ClientSession()
        return self

    async def stop(self) -> None:
        await self.http.close()
        await self.server.before_stop()
        self.server.close()
        await self.server.wait_closed()
        await self.server.after_stop()

    async def post(self, body: dict | bytes, signature: str | None = "sign") -> tuple[int, str]:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if signature == "sign":
            signature = sign(SECRET, raw)
        if signature is not None:
            headers["X-Hub-Signature-256"] = signature
        async with self.http.post(self.url, data=raw, headers=headers) as reply:
            return reply.status, await reply.text()

    def inbound(self) -> list[InboundRow]:
        with self.db.reading() as session:
            return list(session.scalars(select(InboundRow).order_by(InboundRow.id)))


@pytest.fixture
async def graph() -> AsyncIterator[GraphStub]:
    stub = GraphStub()
    runner = await stub.start()
    yield stub
    await runner.cleanup()


@pytest.fixture
async def servers(db, graph, tmp_path) -> AsyncIterator[dict]:
    """Starters for the channel (`rasa`) and the ingest; everything started is stopped afterwards."""
    started: list = []

    async def rasa(bot: Bot | None = None, **options) -> Server:
        server = await Server(db, graph, bot or Bot(), tmp_path / "media", **{"sweep_interval": 60, **options}).start()
        started.append(server)
        await asyncio.sleep(0.3)  # past the start-up sweep: what follows is woken by nudges (or later sweeps)
        return server

    async def ingest(pending: str | Server = NOWHERE, **options) -> IngestServer:
        if isinstance(pending, Server):
            pending = pending_url(f"http://127.0.0.1:{pending.port}")
        server = await IngestServer(db, pending, **options).start()
        started.append(server)
        return server

    yield {"rasa": rasa, "ingest": ingest}
    for server in reversed(started):
        if server.http is not None and not server.http.closed:
            await server.stop()


@pytest.fixture
def start_rasa(servers) -> Callable[..., Awaitable[Server]]:
    return servers["rasa"]


@pytest.fixture
def start_ingest(servers) -> Callable[..., Awaitable[IngestServer]]:
    return servers["ingest"]


# --- what the ingest answers, alone ------------------------------------------------------------------


async def test_the_handshake_answers_the_challenge_for_the_right_token_only(start_ingest):
    ingest = await start_ingest()
    right = {"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "1158201444"}
    async with ingest.http.get(ingest.url, params=right) as answer:
        assert (answer.status, await answer.text()) == (200, "1158201444")
    async with ingest.http.get(ingest.url, params={**right, "hub.verify_token": "wrong"}) as answer:
        assert answer.status == 403 and "1158201444" not in await answer.text()
    async with ingest.http.get(ingest.url.removesuffix("webhook")) as answer:
        assert (answer.status, await answer.json()) == (200, {"status": "ok"})


@pytest.mark.parametrize(
    ("body", "signature", "status"),
    [
        (None, None, 403),
        (None, "sha256=" + "0" * 64, 403),
        (b"not json", "sign", 400),
        (b'{"entry": "not a list"}', "sign", 400),
    ],
)
async def test_refused_posts_store_nothing_and_log_no_content(start_ingest, caplog, body, signature, status):
    ingest = await start_ingest()
    answer, _ = await ingest.post(body if body is not None else payload("text"), signature=signature)
    assert answer == status
    assert ingest.inbound() == []
    assert "webhook refused" in caplog.text
    assert "Buongiorno" not in caplog.text and PHONE not in caplog.text and "not json" not in caplog.text


async def test_an_oversized_body_is_answered_413(start_ingest):
    ingest = await start_ingest(max_body_bytes=2_000)
    body = json.dumps({**payload("text"), "padding": "x" * 5_000}).encode()
    assert (await ingest.post(body))[0] == 413
    assert ingest.inbound() == []


async def test_a_message_is_stored_before_the_acknowledgement_while_rasa_is_down(start_ingest, db):
    ingest = await start_ingest(NOWHERE)
    assert await ingest.post(payload("text")) == (200, "EVENT_RECEIVED")
    [row] = ingest.inbound()  # read right after the 200: stored before it
    assert row.status is InboundStatus.pending and row.wamid.startswith("wamid.")
    await ingest.ingest.idle()
    with db.reading() as session:
        assert session.get(Contact, row.contact_id).last_inbound_at is not None  # the window, after the ack
    assert ingest.ingest.nudger.sent == 0


async def test_the_acknowledgement_does_not_wait_for_a_rasa_that_hangs(start_ingest):
    asked, gave_up = asyncio.Event(), asyncio.Event()

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        asked.set()
        await reader.read()  # never answers; returns when the ingest closes the request
        gave_up.set()

    port = free_port()
    hung = await asyncio.start_server(hang, "127.0.0.1", port)
    try:
        ingest = await start_ingest(f"http://127.0.0.1:{port}/webhooks/whatsapp/pending", nudge_timeout=30)
        for n in range(5):
            assert (await ingest.post(text_message(f"wamid.HANG{n}", f"message {n}")))[0] == 200
        await asyncio.wait_for(asked.wait(), 10)
        assert not gave_up.is_set()  # all five answered while the request to Rasa still hangs
        assert [r.wamid for r in ingest.inbound()] == [f"wamid.HANG{n}" for n in range(5)]
    finally:
        hung.close()


async def test_a_redelivered_message_is_stored_once(start_ingest):
    ingest = await start_ingest()
    message = text_message("wamid.TWICE", "ciao")
    answers = await asyncio.gather(*(ingest.post(message) for _ in range(3)))
    assert [a[0] for a in answers] == [200, 200, 200]
    assert len(ingest.inbound()) == 1


async def test_metrics_count_each_acknowledgement_by_status_beside_the_clinic_figures(start_ingest):
    ingest = await start_ingest()
    assert (await ingest.post(text_message("wamid.METRIC1", "ciao")))[0] == 200
    assert (await ingest.post(text_message("wamid.METRIC2", "ciao di nuovo")))[0] == 200
    assert (await ingest.post(payload("text"), signature=None))[0] == 403
    async with ingest.http.get(f"http://127.0.0.1:{ingest.port}/metrics") as answer:
        found = samples(await answer.text())
    assert found[("clinic_webhook_ack_seconds_count", (("status", "200"),))] == 2
    assert found[("clinic_webhook_ack_seconds_count", (("status", "403"),))] == 1
    assert found[("clinic_inbound_messages_total", ())] == 2


@pytest.mark.parametrize(("status", "expected"), [("delivered", OutboundStatus.delivered),
                                                  ("read", OutboundStatus.read),
                                                  ("failed", OutboundStatus.held)])  # 131047: held for the window
async def test_statuses_are_applied_to_the_outbox_before_the_acknowledgement(start_ingest, db, status, expected):
    n = {"delivered": 2, "read": 3, "failed": 4}[status]
    with db.transaction() as session:
        contact = Contact(wa_id=PHONE)
        session.add(contact)
        session.flush()
        session.add(OutboundMessage(contact_id=contact.id, kind="text", body={"type": "text"}, source="bot",
                                    status=OutboundStatus.sent, wamid=f"{OUTBOUND}{n:04d}"))
    ingest = await start_ingest()
    assert (await ingest.post(payload(f"status_{status}")))[0] == 200
    with db.reading() as session:
        row = session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)).first()
    assert row.status is expected
    assert ingest.inbound() == []


async def test_held_messages_are_released_when_the_patient_writes_through_the_ingest(start_ingest, db):
    with db.transaction() as session:
        contact = Contact(wa_id=PHONE)  # never wrote: the window is closed, the nurse's reply was held
        session.add(contact)
        session.flush()
        session.add(OutboundMessage(contact_id=contact.id, kind="text", body={"type": "text"}, source="inbox",
                                    status=OutboundStatus.held))
    ingest = await start_ingest(NOWHERE)  # Rasa down: the ingest alone opens the window
    assert (await ingest.post(payload("text")))[0] == 200
    await ingest.ingest.idle()
    with db.reading() as session:
        assert session.scalars(select(OutboundMessage.status)).one() is OutboundStatus.queued


# --- the ingest and the channel together -------------------------------------------------------------


async def test_the_nudge_reaches_the_channel_and_the_bot_answers(start_rasa, start_ingest, graph, caplog):
    bot = Bot(reply=True)
    rasa = await start_rasa(bot)  # sweeps only every 60 s: the nudge must do it
    ingest = await start_ingest(rasa)
    assert await ingest.post(payload("text")) == (200, "EVENT_RECEIVED")
    await ingest.ingest.idle()
    await rasa.settled()
    assert ingest.ingest.nudger.sent >= 1
    assert len(bot.seen) == 1 and bot.seen[0].sender_id == PHONE
    assert [m["to"] for m in graph.sent] == [PHONE] and graph.sent[0]["text"]["body"] == "got 1"
    assert [r.status for r in rasa.inbound()] == [InboundStatus.handled]
    assert "Buongiorno" not in caplog.text and PHONE not in caplog.text and "Giulia" not in caplog.text


async def test_a_redelivery_through_the_ingest_gets_one_reply(start_rasa, start_ingest, graph):
    bot = Bot(reply=True)
    rasa = await start_rasa(bot)
    ingest = await start_ingest(rasa)
    message = text_message("wamid.AGAIN", "ciao")
    assert (await ingest.post(message))[0] == 200
    await ingest.ingest.idle()
    await rasa.settled()
    assert (await ingest.post(message))[0] == 200  # Meta delivers again after the bot answered
    await ingest.ingest.idle()
    await rasa.settled()
    assert bot.texts() == ["ciao"] and len(graph.sent) == 1


async def test_a_lost_nudge_is_recovered_by_the_sweep(start_rasa, start_ingest, graph):
    bot = Bot(reply=True)
    rasa = await start_rasa(bot, sweep_interval=0.2)
    ingest = await start_ingest(NOWHERE)  # the nudge goes nowhere (Rasa restarting)
    assert (await ingest.post(payload("text")))[0] == 200
    await ingest.ingest.idle()
    deadline = time.monotonic() + 10
    while not bot.seen and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await rasa.settled()
    assert ingest.ingest.nudger.sent == 0
    assert len(bot.seen) == 1 and len(graph.sent) == 1


async def test_messages_stored_while_rasa_was_away_are_handled_in_order_when_it_starts(start_rasa, start_ingest):
    ingest = await start_ingest(NOWHERE)
    for n in range(4):
        assert (await ingest.post(text_message(f"wamid.AWAY{n}", f"message {n}")))[0] == 200
    bot = Bot()
    rasa = await start_rasa(bot)  # its start-up sweep finds them
    await rasa.settled()
    assert bot.texts() == [f"message {n}" for n in range(4)]


async def test_each_patients_messages_are_handled_in_stored_order(start_rasa, start_ingest):
    async def uneven(message):
        await asyncio.sleep(0.15 if message.text.endswith("0") else 0.01)

    bot = Bot(behaviour=uneven)
    rasa = await start_rasa(bot)
    ingest = await start_ingest(rasa)
    patients = [PHONE, "447700900123", "393331112222"]

    async def patient(phone: str) -> None:
        for n in range(4):
            assert (await ingest.post(text_message(f"wamid.{phone}.{n}", f"{phone} {n}", phone=phone)))[0] == 200

    await asyncio.gather(*(patient(p) for p in patients))
    await ingest.ingest.idle()
    await rasa.settled()
    for phone in patients:
        assert bot.texts(phone) == [f"{phone} {n}" for n in range(4)]
    with rasa.db.reading() as session:
        assert set(session.scalars(select(InboundRow.status))) == {InboundStatus.handled}


async def test_the_window_is_open_when_the_webhook_is_acknowledged(start_rasa, start_ingest, db, graph):
    ingest = await start_ingest(NOWHERE)  # no Rasa to nudge: only the store's own transaction counts
    assert (await ingest.post(payload("text")))[0] == 200
    with db.reading() as session:
        assert session.scalars(select(Contact.last_inbound_at)).one() is not None  # before any nudge
    rasa = await start_rasa(Bot(reply=True))  # its start-up sweep wakes the worker
    await rasa.settled()
    assert [m["type"] for m in graph.sent] == ["text"]  # the reply itself, not held behind a window template
    with db.reading() as session:
        assert set(session.scalars(select(OutboundMessage.status))) == {OutboundStatus.sent}


# --- the channel's nudge route ---------------------------------------------------------------------------


async def test_the_nudge_route_takes_only_signed_well_formed_nudges(start_rasa):
    rasa = await start_rasa(Bot())
    url = pending_url(f"http://127.0.0.1:{rasa.port}")
    body = pending_body([3, 1])

    async def post(raw: bytes, signature: str | None) -> tuple[int, str]:
        headers = {PENDING_SIGNATURE_HEADER: signature} if signature else {}
        async with rasa.http.post(url, data=raw, headers=headers) as answer:
            return answer.status, await answer.text()

    assert (await post(body, None))[0] == 403
    assert (await post(body, sign(SECRET, body)))[0] == 403  # a Meta-style signature is not a nudge's
    assert (await post(body, sign_pending("another secret", body)))[0] == 403
    bad = b'{"contacts": ["1"]}'
    assert (await post(bad, sign_pending(SECRET, bad)))[0] == 400
    status, text = await post(body, sign_pending(SECRET, body))
    assert (status, json.loads(text)) == (202, {"woken": 2})
    await rasa.settled()  # unknown contacts: their workers find nothing and stop


# --- the real process --------------------------------------------------------------------------------------


def test_python_m_clinic_whatsapp_ingest_serves_the_webhook(db, tmp_path):
    port = free_port()
    env = {**os.environ, "DATABASE_URL": str(db.engine.url), "WHATSAPP_APP_SECRET": SECRET,
           "WHATSAPP_VERIFY_TOKEN": VERIFY, "WHATSAPP_PHONE_NUMBER_ID": PHONE_NUMBER_ID,
           "RASA_URL": "http://127.0.0.1:9", "WHATSAPP_INGEST_PORT": str(port)}
    log = tmp_path / "ingest.log"
    process = subprocess.Popen([sys.executable, "-m", "clinic.whatsapp.ingest"], cwd=ROOT, env=env,
                               stdout=log.open("w"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/webhooks/whatsapp"
    try:
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
        query = {"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "42"}
        assert requests.get(f"{base}/webhook", params=query, timeout=5).text == "42"
        raw = json.dumps(payload("text")).encode()
        unsigned = requests.post(f"{base}/webhook", data=raw, timeout=5)
        assert unsigned.status_code == 403
        signed = requests.post(f"{base}/webhook", data=raw, headers={"X-Hub-Signature-256": sign(SECRET, raw)},
                               timeout=5)
        assert (signed.status_code, signed.text) == (200, "EVENT_RECEIVED")
        with db.reading() as session:
            assert [r.status for r in session.scalars(select(InboundRow))] == [InboundStatus.pending]
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert "Buongiorno" not in log.read_text() and PHONE not in log.read_text()
