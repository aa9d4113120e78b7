"""The `whatsapp` channel's Prometheus figures and the NLU outcome it stores, without a model: the
channel runs over real HTTP in a plain Sanic app; in place of Rasa's agent a stand-in writes the turn's
events to Rasa's own in-memory tracker store, as `Agent.handle_message` would."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime

import aiohttp
import requests
from rasa.core.channels.channel import UserMessage
from rasa.core.tracker_store import InMemoryTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, SlotSet, UserUttered
from sqlalchemy import select

from clinic import kpi
from clinic.models import InboundMessage as InboundRow
from clinic.settings import settings
from clinic.whatsapp.channel import nlu_outcome
from tests.kpi.test_metrics import samples
from tests.whatsapp.test_channel import (
    PHONE,
    Server,
    graph,  # noqa: F401 - a fixture
    text_message,
)
from tests.whatsapp_sandbox import free_port, wait_until

RASA_TURNS = {  # what the stand-in bot "understood" and did, by message text
    "ciao": ("greet", ["utter_greet"]),
    "blorf": ("nlu_fallback", ["utter_ask_rephrase"]),
    "nurse": ("request_human", []),  # paused: a nurse holds the conversation, the bot does nothing
}


class RasaStandIn:
    """The part of Rasa's `Agent` the channel uses: ready, handle_message, tracker_store (Rasa's own)."""

    def __init__(self) -> None:
        self.tracker_store = InMemoryTrackerStore(Domain.empty())

    def is_ready(self) -> bool:
        return True

    async def handle_message(self, message: UserMessage) -> None:
        if message.text == "boom":
            raise RuntimeError("the bot failed")
        intent, actions = RASA_TURNS[message.text]
        tracker = await self.tracker_store.get_or_create_tracker(message.sender_id)
        tracker.update(UserUttered(message.text, {"name": intent, "confidence": 0.9}, message_id=message.message_id))
        for action in actions:
            tracker.update(ActionExecuted(action))
            await message.output_channel.send_response(message.sender_id, {"text": "..."})
            tracker.update(BotUttered("..."))
        if actions:
            tracker.update(ActionExecuted("action_listen"))
        await self.tracker_store.save(tracker)


async def test_the_channel_counts_its_turns_and_stores_what_the_bot_understood(db, graph, tmp_path, caplog):  # noqa: F811
    agent = RasaStandIn()
    server = Server(db, graph, agent.handle_message, tmp_path / "media", max_attempts=2)
    server.app.ctx.agent = agent
    server.channel.add_metrics_route(server.app)  # what the blueprint's main_process_start does under `rasa run`
    await server.start()
    try:
        for n, text in enumerate(("ciao", "blorf", "nurse", "boom")):
            assert (await server.post(text_message(f"wamid.metrics.{n}", text)))[0] == 200
            await server.settled()
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{server.port}/metrics") as answer:
            assert answer.status == 200
            found = samples(await answer.text())
    finally:
        await server.stop()

    assert found[("clinic_channel_messages_total", (("outcome", "handled"),))] == 3
    assert found[("clinic_channel_messages_total", (("outcome", "retried"),))] == 1
    assert found[("clinic_channel_messages_total", (("outcome", "failed"),))] == 1
    assert found[("clinic_channel_bot_messages_total", (("outcome", "queued"),))] == 2
    assert found[("clinic_channel_reply_seconds_count", ())] == 2  # one per turn the bot answered
    assert 0 < found[("clinic_channel_reply_seconds_sum", ())] < 20
    assert found[("clinic_channel_nlu_turns_total", (("fallback", "true"),))] == 1
    assert found[("clinic_channel_nlu_turns_total", (("fallback", "false"),))] == 1
    assert found[("clinic_outbox_depth", (("status", "queued"),))] == 0  # the client sent both
    assert found[("clinic_outbound_messages_total", (("source", "bot"),))] == 2
    with db.reading() as s:
        stored = s.execute(select(InboundRow.wamid, InboundRow.nlu_intent, InboundRow.nlu_fallback)
                           .order_by(InboundRow.id)).all()
    assert stored == [("wamid.metrics.0", "greet", False), ("wamid.metrics.1", "nlu_fallback", True),
                      ("wamid.metrics.2", None, None), ("wamid.metrics.3", None, None)]
    today = datetime.now(settings().zone).date()
    assert kpi.fallback_rate(db, kpi.Filters(today, today)) == kpi.Rate(1, 2)
    assert "blorf" not in caplog.text and PHONE not in caplog.text


def test_the_nlu_outcome_is_read_from_the_turn_of_that_message():
    def user(intent: str, wamid: str) -> UserUttered:
        return UserUttered("text", {"name": intent, "confidence": 0.9}, message_id=wamid)

    events = [ActionExecuted("action_session_start"), ActionExecuted("action_listen"),
              user("book_visit", "w1"), ActionExecuted("booking_form"), SlotSet("specialty", None),
              ActionExecuted("action_listen"),
              user("inform", "w2"), ActionExecuted("action_default_fallback"), ActionExecuted("action_listen"),
              user("greet", "w3"), ActionExecuted("action_two_stage_fallback"),
              user("inform", "w5"), ActionExecuted("utter_ask_rephrase"), ActionExecuted("action_listen"),
              user("request_human", "w4")]
    assert nlu_outcome(events, "w1") == ("book_visit", False)
    assert nlu_outcome(events, "w2") == ("inform", True)  # understood, but the policies fell back
    assert nlu_outcome(events, "w3") == ("greet", True)
    assert nlu_outcome(events, "w5") == ("inform", True)  # an answer to no question: "could you rephrase?"
    assert nlu_outcome(events, "w4") is None  # the bot did nothing (yet)
    assert nlu_outcome(events, "w9") is None  # not in this tracker


SERVE = """
import sys
from rasa.core.channels.channel import register
from sanic import Sanic
from clinic.settings import settings
from clinic.whatsapp.channel import WhatsAppInput
from clinic.whatsapp.types import GraphConfig

app = Sanic("rasa_like")
register([WhatsAppInput(GraphConfig.from_credentials({}, settings()))], app, route="/webhooks/")  # as `rasa run`
app.run(host="127.0.0.1", port=int(sys.argv[1]), workers=1, access_log=False)
"""


def test_under_sanics_own_start_the_metrics_are_at_the_servers_root(db, tmp_path):
    port = free_port()
    env = {**os.environ, "DATABASE_URL": db.url, "METRICS_TOKEN": "scrape-me", "MEDIA_DIR": str(tmp_path),
           "WHATSAPP_API_BASE_URL": "http://127.0.0.1:9"}
    with (tmp_path / "server.log").open("w") as log:
        process = subprocess.Popen([sys.executable, "-c", SERVE, str(port)], env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/metrics"

        def up() -> int | None:
            assert process.poll() is None, (tmp_path / "server.log").read_text()
            try:
                return requests.get(url, timeout=2).status_code
            except requests.ConnectionError:
                return None

        assert wait_until(up, timeout=120, interval=0.3, what="the channel's server") == 401
        answer = requests.get(url, headers={"Authorization": "Bearer scrape-me"}, timeout=10)
        assert answer.status_code == 200
        assert samples(answer.text)[("clinic_channel_messages_total", (("outcome", "handled"),))] == 0
        assert requests.get(f"http://127.0.0.1:{port}/webhooks/whatsapp/", timeout=5).json() == {"status": "ok"}
    finally:
        process.terminate()
        process.wait(timeout=30)
