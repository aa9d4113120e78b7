"""The `whatsapp` channel over real HTTP: mounted in a plain Sanic app on a free port, with a recording
bot (`on_new_message`), the real WhatsApp client, and a small Graph API stand-in it sends to.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import socket
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from rasa.core.channels.channel import UserMessage
from sanic import Sanic
from sqlalchemy import select

from clinic import crypto
from clinic.db import Database
from clinic.models import Contact, InboundStatus, OutboundMessage, OutboundStatus, utcnow
from clinic.models import InboundMessage as InboundRow
from clinic.whatsapp.channel import WhatsAppInput
from clinic.whatsapp.client import WhatsAppClient
from clinic.whatsapp.types import GraphConfig
from clinic.whatsapp.webhook import sign

PAYLOADS = Path(__file__).parent / "payloads"
PHONE_NUMBER_ID = "106540352242922"
SECRET = "test-app-secret"
VERIFY = "test-verify-token"
PHONE, OTHER = "393471234567", "447700900123"
OUTBOUND = "wamid.HBgMMzkzNDcxMjM0NTY3FQIAERgSOUTBOUND"  # + 4 digits: the status fixtures' wamids
_names = itertools.count()
Sanic.test_mode = True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def payload(name: str, **replace: str) -> dict:
    """A fixture with the send time set to now (the 24-hour window is open), ids optionally replaced."""
    text = (PAYLOADS / f"{name}.json").read_text(encoding="utf-8").replace('"1772000000"', f'"{int(time.time())}"')
    for old, new in replace.items():
        text = text.replace(old, new)
    return json.loads(text)


def text_message(wamid: str, body: str, phone: str = PHONE, user_id: str | None = None) -> dict:
    """A text message webhook from `phone` (Meta's shape, like payloads/text.json)."""
    message = payload("text")
    value = message["entry"][0]["changes"][0]["value"]
    value["contacts"] = [{"profile": {"name": "Patient"}, "wa_id": phone, **({"user_id": user_id} if user_id else {})}]
    value["messages"][0].update(id=wamid, text={"body": body}, **{"from": phone})
    value["messages"][0].pop("from_user_id", None)
    return message


class GraphStub:
    """The part of the Graph API the channel's client uses: send, read receipts, media download."""

    def __init__(self) -> None:
        self.sent: list[dict] = []
        self.reads: list[dict] = []
        self.media = {"1003383421387256": (b"\xff\xd8\xff jpeg bytes", "image/jpeg")}
        self.ids = itertools.count(1)
        self.url = ""

    async def start(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_get("/_media/{media_id}", self._media_file)
        app.router.add_post("/{version}/{number}/messages", self._messages)
        app.router.add_get("/{version}/{media_id}", self._media_info)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"
        return runner

    async def _messages(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("status") == "read":
            self.reads.append(body)
            return web.json_response({"success": True})
        self.sent.append(body)
        wamid = f"wamid.OUT{next(self.ids):04d}"
        return web.json_response({"messaging_product": "whatsapp", "messages": [{"id": wamid}]})

    async def _media_info(self, request: web.Request) -> web.Response:
        media_id = request.match_info["media_id"]
        if media_id not in self.media:
            return web.json_response({"error": {"code": 100, "message": "unknown media"}}, status=404)
        return web.json_response({"url": f"{self.url}/_media/{media_id}", "mime_type": self.media[media_id][1],
                                  "id": media_id, "messaging_product": "whatsapp"})

    async def _media_file(self, request: web.Request) -> web.Response:
        data, mime = self.media[request.match_info["media_id"]]
        return web.Response(body=data, content_type=mime)


@dataclass
class Bot:
    """A recording `on_new_message`: what the channel handed over, in order; can be slow or fail."""

    seen: list[UserMessage] = field(default_factory=list)
    behaviour: Callable[[UserMessage], Awaitable[None]] | None = None
    reply: bool = False

    async def __call__(self, message: UserMessage) -> None:
        if self.behaviour is not None:
            await self.behaviour(message)
        self.seen.append(message)
        if self.reply:
            await message.output_channel.send_response(message.sender_id, {"text": f"got {len(self.seen)}"})

    def texts(self, sender: str | None = None) -> list[str]:
        return [m.text for m in self.seen if sender is None or m.sender_id == sender]


class Server:
    """The channel in a plain Sanic app on a free port."""

    def __init__(self, db: Database, graph: GraphStub, bot: Bot, media_dir: Path, **options) -> None:
        self.db, self.bot = db, bot
        config = GraphConfig(graph.url, "v23.0", PHONE_NUMBER_ID, "token", SECRET, VERIFY)
        self.client = WhatsAppClient(db, config, retry_base_delay=0.05, pair_interval=0.01, poll_interval=0.2)
        self.channel = WhatsAppInput(config, db=db, client=self.client, media_dir=media_dir,
                                     **{"retry_delay": 0.05, **options})
        self.app = Sanic(f"whatsapp_channel_test_{next(_names)}")
        self.app.blueprint(self.channel.blueprint(bot), url_prefix="/webhooks/whatsapp")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/webhooks/whatsapp/webhook"
        self.server = None
        self.http: aiohttp.ClientSession | None = None

    async def start(self) -> Server:
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

    async def post(self, body: dict | bytes, signature: str | None = "sign", **headers: str) -> tuple[int, str]:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        if signature == "sign":
            signature = sign(SECRET, raw)
        if signature is not None:
            headers["X-Hub-Signature-256"] = signature
        async with self.http.post(self.url, data=raw, headers={"Content-Type": "application/json", **headers}) as r:
            return r.status, await r.text()

    async def settled(self, timeout: float = 20.0) -> None:
        """Until the bot has been given everything stored and the client has sent everything queued."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            await self.channel.inbox.idle(timeout=deadline - time.monotonic())
            with self.db.reading() as session:
                busy = session.scalars(select(InboundRow.id).where(InboundRow.status == InboundStatus.pending)).first()
                busy = busy or session.scalars(select(OutboundMessage.id).where(
                    OutboundMessage.status.in_([OutboundStatus.queued, OutboundStatus.sending]))).first()
            if busy is None and not self.channel.inbox.workers:
                return
            await asyncio.sleep(0.05)
        raise AssertionError("channel not settled")

    def inbound(self) -> list[InboundRow]:
        with self.db.reading() as session:
            return list(session.scalars(select(InboundRow).order_by(InboundRow.id)))

    def contacts(self) -> list[Contact]:
        with self.db.reading() as session:
            return list(session.scalars(select(Contact).order_by(Contact.id)))


@pytest.fixture
async def graph() -> AsyncIterator[GraphStub]:
    stub = GraphStub()
    runner = await stub.start()
    yield stub
    await runner.cleanup()


@pytest.fixture
async def serve(db, graph, tmp_path) -> AsyncIterator[Callable[..., Awaitable[Server]]]:
    servers: list[Server] = []

    async def start(bot: Bot | None = None, **options) -> Server:
        server = await Server(db, graph, bot or Bot(), tmp_path / "media", **options).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        if server.http is not None and not server.http.closed:
            await server.stop()


# --- the handshake and the checks before anything is stored ----------------------------------------


async def test_the_verification_handshake_answers_the_challenge_for_the_right_token(serve):
    server = await serve()
    query = {"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "1158201444"}
    async with server.http.get(server.url, params=query) as answer:
        assert (answer.status, await answer.text()) == (200, "1158201444")


@pytest.mark.parametrize(
    "query",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY, "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.verify_token": VERIFY},
        {},
    ],
)
async def test_the_handshake_is_refused_otherwise(serve, query):
    server = await serve()
    async with server.http.get(server.url, params=query) as answer:
        assert answer.status == 403
        assert "1" not in await answer.text()


async def test_the_health_route_answers(serve):
    server = await serve()
    async with server.http.get(server.url.removesuffix("webhook")) as answer:
        assert answer.status == 200


@pytest.mark.parametrize("signature", [None, "", "sha256=" + "0" * 64, sign("another secret", b"{}")])
async def test_a_missing_or_wrong_signature_is_refused_and_nothing_is_stored(serve, signature, caplog):
    server = await serve()
    status, _ = await server.post(payload("text"), signature=signature)
    assert status == 403
    assert server.inbound() == [] and server.contacts() == []
    assert "webhook refused" in caplog.text
    assert "Buongiorno" not in caplog.text and PHONE not in caplog.text and "Giulia" not in caplog.text


async def test_a_body_signed_for_other_content_is_refused(serve):
    server = await serve()
    body = json.dumps(payload("text")).encode()
    status, _ = await server.post(body + b" ", signature=sign(SECRET, body))
    assert status == 403 and server.inbound() == []


@pytest.mark.parametrize("body", [b"{not json", b"[]", b'{"entry": "x"}', b"\xff\xfe", b""])
async def test_a_malformed_body_is_answered_400(serve, body, caplog):
    server = await serve()
    status, _ = await server.post(body)
    assert status == 400 and server.inbound() == []
    assert "malformed body" in caplog.text and "not json" not in caplog.text


async def test_an_oversized_body_is_answered_413_without_reading_it(serve):
    server = await serve(max_body_bytes=10_000)
    body = json.dumps({**payload("text"), "padding": "x" * 20_000}).encode()
    status, _ = await server.post(body)
    assert status == 413 and server.inbound() == []


async def test_an_oversized_body_without_a_length_is_cut_off_at_the_limit(serve):
    server = await serve(max_body_bytes=10_000)

    async def chunks():
        for _ in range(30):
            yield b"x" * 1000

    headers = {"X-Hub-Signature-256": sign(SECRET, b"x" * 30_000)}
    async with server.http.post(server.url, data=chunks(), headers=headers) as answer:
        assert answer.status == 413
    assert server.inbound() == []


# --- every message stored before 200, handled after it --------------------------------------------


async def test_a_text_is_stored_acknowledged_read_and_handed_to_the_bot_which_replies(serve, graph, caplog):
    bot = Bot(reply=True)
    server = await serve(bot)
    status, text = await server.post(payload("text"))
    assert status == 200 and text == "EVENT_RECEIVED"
    await server.settled()
    [message] = bot.seen
    assert (message.text, message.sender_id, message.input_channel) == (
        "Buongiorno, vorrei prenotare una visita", PHONE, "whatsapp")
    assert message.message_id == "wamid.HBgMMzkzNDcxMjM0NTY3FQIAEhgU0001"
    assert message.metadata["wamid"] == message.message_id and "context" not in message.metadata
    [row] = server.inbound()
    assert row.status is InboundStatus.handled and row.attempts == 1 and row.handled_at is not None
    [contact] = server.contacts()
    assert (contact.wa_id, contact.user_id, contact.profile_name) == (PHONE, "IT.1502576394655843", "Giulia Bianchi")
    assert contact.last_inbound_at is not None
    assert [r["message_id"] for r in graph.reads] == [message.message_id]
    assert graph.reads[0]["typing_indicator"] == {"type": "text"}
    [reply] = graph.sent
    assert reply["to"] == PHONE and reply["text"]["body"] == "got 1"
    assert "Buongiorno" not in caplog.text and PHONE not in caplog.text and "Giulia" not in caplog.text


async def test_the_acknowledgement_does_not_wait_for_a_slow_bot(serve):
    async def slow(_message):
        await asyncio.sleep(3)

    server = await serve(Bot(behaviour=slow))
    durations = []
    for n in range(9):
        started = time.perf_counter()
        status, _ = await server.post(text_message(f"wamid.ACK{n}", "ciao", phone=f"39347000{n:04d}"))
        durations.append(time.perf_counter() - started)
        assert status == 200
    assert statistics.median(durations) < 0.25, durations
    assert len(server.inbound()) == 9  # all stored before their 200


async def test_the_bots_replies_go_out_while_its_turn_is_still_running(serve, graph):
    sent_during_the_turn = []

    async def turn(message):  # Rasa goes on predicting after each message, holding the event loop
        await message.output_channel.send_response(message.sender_id, {"text": "Buongiorno!"})
        await message.output_channel.send_response(message.sender_id, {"text": "Come posso aiutarla?"})
        sent_during_the_turn.extend(m["text"]["body"] for m in graph.sent)

    server = await serve(Bot(behaviour=turn))
    await server.post(payload("text"))
    await server.settled()
    assert sent_during_the_turn == ["Buongiorno!", "Come posso aiutarla?"]
    assert [m["text"]["body"] for m in graph.sent] == ["Buongiorno!", "Come posso aiutarla?"]


async def test_a_redelivered_message_is_handled_once(serve, graph):
    bot = Bot(reply=True)
    server = await serve(bot)
    body = payload("text")
    assert (await server.post(body))[0] == 200
    await server.settled()
    results = await asyncio.gather(*(server.post(body) for _ in range(5)))  # Meta retrying, all at once
    assert {status for status, _ in results} == {200}
    await server.settled()
    assert len(bot.seen) == 1 and len(server.inbound()) == 1 and len(graph.sent) == 1


async def test_concurrent_first_deliveries_of_one_message_are_handled_once(serve):
    bot = Bot()
    server = await serve(bot)
    results = await asyncio.gather(*(server.post(payload("text")) for _ in range(6)))
    assert {status for status, _ in results} == {200}
    await server.settled()
    assert len(bot.seen) == 1 and len(server.inbound()) == 1


async def test_a_patients_messages_are_handled_in_order_and_patients_in_parallel(serve):
    order_in: dict[str, list[str]] = {PHONE: [], OTHER: []}
    spans: dict[str, tuple[float, float]] = {}

    async def uneven(message):
        # the first message is the slowest: a naive concurrent handler would answer them out of order
        started = time.monotonic()
        await asyncio.sleep(1.0 if message.text.endswith(" 0") else 0.02)
        order_in[message.sender_id].append(message.text)
        spans[message.text] = (started, time.monotonic())

    bot = Bot(behaviour=uneven)
    server = await serve(bot)
    for n in range(5):
        for phone in (PHONE, OTHER):
            assert (await server.post(text_message(f"wamid.{phone}.{n}", f"{phone} {n}", phone=phone)))[0] == 200
    await server.settled()
    assert order_in[PHONE] == [f"{PHONE} {n}" for n in range(5)]
    assert order_in[OTHER] == [f"{OTHER} {n}" for n in range(5)]
    # the two patients' slow first messages were handled at the same time, not one after the other
    assert spans[f"{OTHER} 0"][0] < spans[f"{PHONE} 0"][1]


async def test_several_entries_changes_messages_and_statuses_in_one_post_are_all_handled(serve, db):
    with db.transaction() as session:
        contact = Contact(wa_id=PHONE)
        session.add(contact)
        session.flush()
        for n in (21, 22):
            session.add(OutboundMessage(contact_id=contact.id, kind="text", body={"type": "text"}, source="bot",
                                        status=OutboundStatus.sent, wamid=f"{OUTBOUND}{n:04d}"))
    bot = Bot()
    server = await serve(bot)
    assert (await server.post(payload("multi_entry")))[0] == 200
    await server.settled()
    assert bot.texts(PHONE) == ["primo", "secondo"] and bot.texts(OTHER) == ["hello"]
    with db.reading() as session:
        statuses = [r.status for r in session.scalars(select(OutboundMessage).order_by(OutboundMessage.id))]
    assert statuses == [OutboundStatus.delivered, OutboundStatus.read]


@pytest.mark.parametrize(("status", "expected"), [("delivered", OutboundStatus.delivered),
                                                  ("read", OutboundStatus.read),
                                                  ("failed", OutboundStatus.held)])  # 131047: held for the window
async def test_statuses_go_to_the_client(serve, db, status, expected):
    n = {"sent": 1, "delivered": 2, "read": 3, "failed": 4}[status]
    with db.transaction() as session:
        contact = Contact(wa_id=PHONE)
        session.add(contact)
        session.flush()
        session.add(OutboundMessage(contact_id=contact.id, kind="text", body={"type": "text"}, source="bot",
                                    status=OutboundStatus.sent, wamid=f"{OUTBOUND}{n:04d}"))
    server = await serve()
    assert (await server.post(payload(f"status_{status}")))[0] == 200
    await server.settled()
    with db.reading() as session:
        row = session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)).first()
    assert row.status is expected
    if status == "failed":
        assert row.error_code == 131047
    assert server.inbound() == []


# --- what each type becomes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "text"),
    [
        ("interactive_button_reply", "/affirm"),
        ("interactive_list_reply", '/choose_slot{"slot_id": "12"}'),
        ("button_template_reply", '/confirm_appointment{"appointment_id": "7"}'),
        ("location", '/share_attachment{"media_type": "location"}'),
        ("contacts", '/share_attachment{"media_type": "contacts"}'),
        ("unsupported", "/send_unsupported_message"),
        ("unknown_legacy", "/send_unsupported_message"),
    ],
)
async def test_each_type_reaches_the_bot_as_its_rasa_text(serve, fixture, text):
    bot = Bot()
    server = await serve(bot)
    assert (await server.post(payload(fixture)))[0] == 200
    await server.settled()
    assert bot.texts() == [text]


async def test_a_tap_on_an_old_reminder_carries_its_callback_data(serve, db):
    reminder = "wamid.HBgMMzkzNDcxMjM0NTY3FQIAERgSREMINDER0001AA=="
    with db.transaction() as session:
        contact = Contact(wa_id=PHONE)
        session.add(contact)
        session.flush()
        session.add(OutboundMessage(contact_id=contact.id, kind="template", body={"type": "template"},
                                    source="outreach:reminder", biz_opaque_callback_data="appointment:7",
                                    status=OutboundStatus.read, wamid=reminder))
    bot = Bot()
    server = await serve(bot)
    assert (await server.post(payload("button_template_reply")))[0] == 200
    await server.settled()
    [message] = bot.seen
    assert message.metadata["context"] == {"wamid": reminder, "biz_opaque_callback_data": "appointment:7"}
    assert server.inbound()[0].context_wamid == reminder


async def test_a_reply_to_an_unknown_message_has_a_context_without_callback_data(serve):
    bot = Bot()
    server = await serve(bot)
    assert (await server.post(payload("interactive_button_reply")))[0] == 200
    await server.settled()
    assert bot.seen[0].metadata["context"]["biz_opaque_callback_data"] is None


async def test_an_image_is_downloaded_stored_and_announced_to_the_bot(serve, graph, tmp_path):
    bot = Bot()
    server = await serve(bot)
    assert (await server.post(payload("image")))[0] == 200
    await server.settled()
    [row] = server.inbound()
    assert row.media_id == "1003383421387256" and row.media_mime == "image/jpeg"
    assert row.media_path == f"{row.contact_id}/{row.id}.jpg"
    stored = tmp_path / "media" / row.media_path
    assert crypto.read_file(stored) == graph.media["1003383421387256"][0]
    assert graph.media["1003383421387256"][0] not in stored.read_bytes()  # encrypted at rest
    [message] = bot.seen
    assert message.text == '/share_attachment{"media_type": "image"}'
    assert message.metadata["media"] == {"inbound_id": row.id, "path": row.media_path, "mime": "image/jpeg"}


async def test_media_that_cannot_be_downloaded_is_retried_then_failed(serve):
    bot = Bot()
    server = await serve(bot)
    assert (await server.post(payload("document")))[0] == 200  # the stub does not know this media id
    await server.settled()
    [row] = server.inbound()
    assert row.status is InboundStatus.failed and row.attempts == 3 and bot.seen == []


async def test_a_reaction_is_recorded_without_bothering_the_bot(serve, graph):
    bot = Bot()
    server = await serve(bot)
    assert (await server.post(payload("reaction")))[0] == 200
    await server.settled()
    [row] = server.inbound()
    assert row.type == "reaction" and row.status is InboundStatus.handled and row.rasa_text is None
    assert bot.seen == [] and graph.reads == []


async def test_a_changed_number_moves_the_contact_to_it(serve, db):
    bot = Bot()
    server = await serve(bot)
    assert (await server.post(payload("text")))[0] == 200
    assert (await server.post(payload("system_user_changed_number")))[0] == 200
    await server.settled()
    [contact] = server.contacts()
    assert (contact.wa_id, contact.user_id) == ("393479999999", "IT.9902576394655999")
    assert len(bot.seen) == 1  # the system message itself needs no answer
    new = text_message("wamid.AFTER", "ciao", phone="393479999999")
    assert (await server.post(new))[0] == 200
    await server.settled()
    assert len(server.contacts()) == 1 and bot.seen[-1].sender_id == "393479999999"


async def test_a_patient_known_only_by_user_id_is_served_and_answered_by_recipient(serve, graph):
    bot = Bot(reply=True)
    server = await serve(bot)
    assert (await server.post(payload("user_id_only")))[0] == 200
    await server.settled()
    [message] = bot.seen
    assert message.sender_id == "IT.7702576394655777"
    [contact] = server.contacts()
    assert (contact.wa_id, contact.user_id, contact.profile_name) == (None, "IT.7702576394655777", "Sam")
    [reply] = graph.sent
    assert reply.get("recipient") == "IT.7702576394655777" and "to" not in reply


# --- failures and restarts ---------------------------------------------------------------------------


async def test_a_failing_message_is_retried_and_then_succeeds(serve):
    failures = []

    async def flaky(message):
        if len(failures) < 2:
            failures.append(message.message_id)
            raise RuntimeError("tracker store hiccup")

    bot = Bot(behaviour=flaky)
    server = await serve(bot)
    assert (await server.post(payload("text")))[0] == 200
    await server.settled()
    assert len(failures) == 2 and len(bot.seen) == 1
    assert server.inbound()[0].status is InboundStatus.handled and server.inbound()[0].attempts == 3


async def test_a_message_that_always_fails_is_marked_failed_and_the_next_one_goes_on(serve, caplog):
    async def broken(message):
        if message.text == "poison":
            raise RuntimeError("boom")

    bot = Bot(behaviour=broken)
    server = await serve(bot)
    await server.post(text_message("wamid.POISON", "poison"))
    await server.post(text_message("wamid.NEXT", "next"))
    await server.settled()
    rows = {r.wamid: r for r in server.inbound()}
    assert rows["wamid.POISON"].status is InboundStatus.failed and rows["wamid.POISON"].attempts == 3
    assert rows["wamid.NEXT"].status is InboundStatus.handled
    assert bot.texts() == ["next"]
    assert "wamid.POISON" in caplog.text and "poison" not in caplog.text.replace("wamid.POISON", "")


async def test_messages_left_pending_by_a_dead_process_are_handled_in_order_after_a_restart(serve, db):
    stuck = asyncio.Event()

    async def never(_message):
        await stuck.wait()  # the process "dies" with the bot mid-message

    first = await serve(Bot(behaviour=never))
    for n in range(3):
        assert (await first.post(text_message(f"wamid.R{n}", f"message {n}")))[0] == 200
    assert (await first.post(text_message("wamid.R_OTHER", "other", phone=OTHER)))[0] == 200
    await asyncio.sleep(0.2)
    await first.stop()
    assert {r.status for r in first.inbound()} == {InboundStatus.pending}

    bot = Bot()
    second = await serve(bot)
    await second.settled()
    assert bot.texts(PHONE) == ["message 0", "message 1", "message 2"]
    assert bot.texts(OTHER) == ["other"]
    assert {r.status for r in second.inbound()} == {InboundStatus.handled}


async def test_the_output_channel_finds_the_contact_of_a_conversation(serve, graph, db):
    server = await serve()
    with db.transaction() as session:
        session.add(Contact(wa_id=PHONE, last_inbound_at=utcnow()))
    output = server.channel.get_output_channel()
    await output.send_response(PHONE, {"text": "Promemoria", "buttons": [{"title": "Sì", "payload": "/affirm"},
                                                                           {"title": "No", "payload": "/deny"}]})
    await server.settled()
    [sent] = graph.sent
    assert sent["to"] == PHONE and sent["type"] == "interactive"
    assert [b["reply"]["id"] for b in sent["interactive"]["action"]["buttons"]] == ["/affirm", "/deny"]


def test_the_channel_is_built_from_credentials_with_settings_as_fallback(monkeypatch):
    channel = WhatsAppInput.from_credentials({"app_secret": "from-credentials", "verify_token": "",
                                              "phone_number_id": 123})
    assert channel.name() == "whatsapp"
    assert channel.config.app_secret == "from-credentials"
    assert channel.config.phone_number_id == "123"
    assert channel.config.verify_token == "sandbox-verify-token"  # empty → the setting's default
    assert copy.copy(channel.config.api_base_url) == "http://localhost:5070"


class Agent:
    """What the channel asks of Rasa's agent (`app.ctx.agent`): whether a model is loaded."""

    def __init__(self) -> None:
        self.ready = False

    def is_ready(self) -> bool:
        return self.ready


async def test_messages_wait_for_the_model_instead_of_being_dropped(db, graph, tmp_path):
    bot = Bot()
    server = Server(db, graph, bot, tmp_path / "media")
    server.app.ctx.agent = agent = Agent()  # Rasa ignores messages while no model is loaded
    await server.start()
    try:
        assert (await server.post(payload("text")))[0] == 200
        await asyncio.sleep(1.0)
        assert bot.seen == [] and server.inbound()[0].status is InboundStatus.pending
        agent.ready = True
        await server.settled()
        assert len(bot.seen) == 1 and server.inbound()[0].status is InboundStatus.handled
    finally:
        await server.stop()
