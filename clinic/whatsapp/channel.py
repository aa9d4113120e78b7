"""The Rasa channel `whatsapp`: Meta's webhook in, the clinic's one WhatsApp client out.

`credentials.yml`:

    clinic.whatsapp.channel.WhatsAppInput:
      access_token: ${WHATSAPP_ACCESS_TOKEN}
      ...

Routes (under `/webhooks/whatsapp/`): `GET /` health, `GET /webhook` Meta's verification
handshake, `POST /webhook` the signed events, `POST /pending` the ingest's signed nudge.

Meta's webhooks normally go to the ingest process (`clinic.whatsapp.ingest`, started by `make run`):
it checks and stores them and answers 200 without waiting for Rasa, whose event loop is busy with
predictions, then nudges `/pending` with the ids of the contacts that have new messages. This
channel's own `POST /webhook` does the same in-process (single-process setups and tests): checked
(size 413, signature 403, shape 400, `clinic.whatsapp.receive`), every message stored (once per
`wamid`) and only then answered 200, so nothing acknowledged can be lost and a redelivery is
recognised by its `wamid`.

The bot works after the acknowledgement: one worker task per contact takes that contact's pending
messages in the order they were stored, so a patient's messages are answered in order while
different patients are served in parallel. A message the bot fails on is retried (`max_attempts`
in all), then marked `failed`. Pending messages nobody woke (stored before a restart, or a nudge
lost while Rasa restarted) are found by a sweep at start-up and every `sweep_interval` seconds.

The Rasa conversation id is the contact's phone number, or its business-scoped user id while no
number is known. Ordering and restart recovery assume one Rasa process serves the webhook (Rasa's
default); several processes would need a claim on inbound rows (a lease column) first.

Logs carry ids only (wamids, row ids, contact ids): never text, names or phone numbers.

Operations: Prometheus `GET /metrics` on the Rasa server's own port (5005, bearer METRICS_TOKEN):
messages handed to the bot, bot messages queued, webhook → first reply latency, NLU fallbacks, and
the outbox the client sends (`clinic.metrics.ChannelMetrics`, docs/kpi.md). Once Rasa has handled a
message, the intent it acted on and whether the turn fell back are stored on the message (intent
names only, never text): the fallback-rate KPI reads them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import mimetypes
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.events import ActionExecuted, UserUttered
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from clinic import consent, crypto, handoff, metrics
from clinic.db import Database, database
from clinic.models import utcnow
from clinic.nlu.lexicon import lexicon_intent
from clinic.settings import require_safe_to_start, settings
from clinic.web import freeze_startup_objects
from clinic.whatsapp import store
from clinic.whatsapp.receive import (
    ACKNOWLEDGEMENT,
    FLOOD_SOURCE,
    MAX_BODY_BYTES,
    PENDING_ROUTE,
    flood_notices,
    handshake,
    read_pending,
    receive,
)
from clinic.whatsapp.types import GraphConfig, StatusUpdate

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
RETRY_DELAY_SECONDS = 1.0  # doubled after each failed attempt
BOT_READY_POLL_SECONDS = 0.5
SWEEP_SECONDS = 5.0  # how often pending rows nobody woke (a lost nudge) are looked for
ENQUEUE_ATTEMPTS = 3  # a bot message the outbox cannot take is retried briefly, then logged as lost
GIL_SWITCH_SECONDS = 0.0005  # see `blueprint`: database threads wait less for the model's thread
FALLBACK_INTENT = "nlu_fallback"  # FallbackClassifier: the NLU was not confident
# the policies were not sure, or the bot said it did not understand (a stray answer, no question open)
FALLBACK_ACTIONS = ("action_default_fallback", "action_two_stage_fallback", "utter_ask_rephrase")


def nlu_outcome(events: Any, message_id: str) -> tuple[str | None, bool] | None:
    """What the bot made of the user message `message_id`, from the tracker's events: the intent it
    acted on and whether the turn fell back (intent `nlu_fallback`, or a fallback action or the request to
    rephrase ran). None when the message is not in the tracker or the bot did nothing with it (a nurse
    holds the conversation).
    """
    intent, actions, found = None, [], False
    for event in events:
        if isinstance(event, UserUttered):
            if found:
                break
            found = event.message_id == message_id
            intent = event.intent_name if found else None
        elif found and isinstance(event, ActionExecuted) and event.action_name != ACTION_LISTEN_NAME:
            actions.append(event.action_name)
    if not found or not actions:
        return None
    intent = intent[:100] if intent else None
    return intent, intent == FALLBACK_INTENT or any(a in FALLBACK_ACTIONS for a in actions)


async def _call(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a client method whether it is a coroutine or blocking (then off the event loop)."""
    if inspect.iscoroutinefunction(function):
        return await function(*args, **kwargs)
    result = await asyncio.to_thread(function, *args, **kwargs)
    return await result if inspect.isawaitable(result) else result


class WhatsAppOutput(OutputChannel):
    """Bot messages → Graph API bodies → the durable outbox (the client sends and retries)."""

    @classmethod
    def name(cls) -> str:
        return "whatsapp"

    def __init__(self, client: Any, db: Database, contact_id: int | None = None, *,
                 counts: metrics.ChannelMetrics | None = None, received_at: Any = None,
                 receipt: asyncio.Task | None = None) -> None:
        self.client = client
        self.db = db
        self.contact_id = contact_id
        self.counts = counts
        self.received_at = received_at  # the patient's message this turn answers, as stored by the webhook
        # the read receipt (with the typing indicator) of that message, sent while Rasa works: the first
        # reply waits for it, so "typing…" never shows after the answer
        self.receipt = receipt

    async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
        """One Rasa message (text, buttons, image, custom…) becomes its Graph bodies in one go."""
        from clinic.whatsapp.outbound import to_graph_messages

        contact_id = self.contact_id
        if contact_id is None:
            contact_id = await asyncio.to_thread(store.contact_for_sender_id, self.db, recipient_id)
        if contact_id is None:
            logger.warning("bot message for a conversation without a WhatsApp contact dropped")
            return
        # Errors stop here: raised into Rasa they would make the channel retry the whole turn, and the
        # patient would get the turn's earlier messages (and its actions' effects) twice.
        try:
            bodies = to_graph_messages(message)
        except Exception as error:  # noqa: BLE001
            logger.error("contact %s: bot message not mappable to WhatsApp (%s)", contact_id, type(error).__name__)
            return
        if not bodies:
            return
        if self.receipt is not None:
            await self.receipt
            self.receipt = None
        for attempt in range(1, ENQUEUE_ATTEMPTS + 1):
            try:
                ids = await self.client.reply(contact_id, bodies, source="bot")
                break
            except Exception as error:  # noqa: BLE001 - e.g. the database restarting
                if attempt == ENQUEUE_ATTEMPTS:
                    logger.error("contact %s: bot message lost, outbox unavailable (%s)", contact_id,
                                 type(error).__name__)
                    if self.counts is not None:
                        self.counts.bot_messages.labels("lost").inc()
                    return
                await asyncio.sleep(0.2 * attempt)
        if self.counts is not None:
            self.counts.bot_messages.labels("queued").inc()
            if self.received_at is not None:  # the turn's first reply: the latency the patient felt
                self.counts.reply_seconds.observe(max((utcnow() - self.received_at).total_seconds(), 0.0))
                self.received_at = None
        logger.debug("contact %s: bot message queued as outbox rows %s", contact_id, ids)

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        await self.send_response(recipient_id, {"text": text})

    async def send_text_with_buttons(
        self, recipient_id: str, text: str, buttons: list[dict[str, Any]], **kwargs: Any
    ) -> None:
        await self.send_response(recipient_id, {"text": text, "buttons": buttons})

    async def send_image_url(self, recipient_id: str, image: str, **kwargs: Any) -> None:
        await self.send_response(recipient_id, {"image": image})

    async def send_attachment(self, recipient_id: str, attachment: Any, **kwargs: Any) -> None:
        await self.send_response(recipient_id, {"attachment": attachment})

    async def send_custom_json(self, recipient_id: str, json_message: dict[str, Any], **kwargs: Any) -> None:
        await self.send_response(recipient_id, {"custom": json_message})


class WhatsAppInput(InputChannel):
    """Meta's webhook as a Rasa input channel (see the module docstring)."""

    @classmethod
    def name(cls) -> str:
        return "whatsapp"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> WhatsAppInput:
        """Rasa builds the channel at start-up: the first moment to refuse production with demo secrets."""
        require_safe_to_start()
        return cls(GraphConfig.from_credentials(credentials or {}, settings()))

    def __init__(
        self,
        config: GraphConfig,
        *,
        db: Database | None = None,
        client: Any = None,
        media_dir: Path | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        max_attempts: int = MAX_ATTEMPTS,
        retry_delay: float = RETRY_DELAY_SECONDS,
        sweep_interval: float = SWEEP_SECONDS,
    ) -> None:
        self.config = config
        self._db = db
        self._client = client
        self._media_dir = media_dir
        self.max_body_bytes = max_body_bytes
        self.max_attempts = max_attempts
        self.retry_delay = retry_delay
        self.sweep_interval = sweep_interval
        self.inbox: Inbox | None = None
        self.counts = metrics.ChannelMetrics()

    @property
    def db(self) -> Database:
        return self._db or database()

    @property
    def client(self) -> Any:
        """The one WhatsApp client, created on first use (never at import or construction)."""
        if self._client is None:
            from clinic.whatsapp.client import WhatsAppClient

            self._client = WhatsAppClient(self.db, self.config)
        return self._client

    @property
    def media_dir(self) -> Path:
        return self._media_dir or settings().media_dir

    def get_output_channel(self) -> OutputChannel:
        """For messages Rasa sends on its own (e.g. `trigger_intent`): the contact is looked up."""
        return WhatsAppOutput(self.client, self.db, counts=self.counts)

    def add_metrics_route(self, app: Any) -> None:
        """`GET /metrics` at the server's root (where Prometheus looks), not under the channel's prefix:
        this channel's counts and the outbox its client sends.
        """
        metrics.add_route(app, found=metrics.process_registry(self.counts.collectors(),
                                                              [metrics.OutboxCollector(lambda: self.db)]))

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        inbox = self.inbox = Inbox(self, on_new_message)
        webhook = Blueprint("whatsapp_webhook", __name__)

        @webhook.listener("main_process_start")  # before Sanic freezes its routes (`before_server_start` is too late)
        async def mount_metrics(app: Any, _loop: Any = None) -> None:
            self.add_metrics_route(app)

        @webhook.listener("after_server_start")
        async def start(app: Any, _loop: Any = None) -> None:
            # Rasa runs the model in this process's event loop thread; the database work runs in worker
            # threads that hold SQLite's write turn, shared with the ingest. At the default 5 ms GIL switch
            # interval a worker waited up to 5 ms after each statement while holding that turn (turns held
            # p95 89 ms at 50 patients, the ingest waiting behind them); at 0.5 ms, 47 ms (bench/RESULTS.md).
            sys.setswitchinterval(GIL_SWITCH_SECONDS)
            freeze_startup_objects()  # the model is loaded by now
            await inbox.start(app)

        @webhook.listener("before_server_stop")
        async def stop(_app: Any, _loop: Any = None) -> None:
            await inbox.stop()

        @webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/webhook", methods=["GET"])
        async def verify(request: Request) -> HTTPResponse:
            return handshake(request, self.config.verify_token)

        @webhook.route("/webhook", methods=["POST"], stream=True)
        async def receive_webhook(request: Request) -> HTTPResponse:
            return await self._receive(request)

        @webhook.route(PENDING_ROUTE, methods=["POST"], stream=True)
        async def pending(request: Request) -> HTTPResponse:
            return await self._pending(request)

        return webhook

    async def _receive(self, request: Request) -> HTTPResponse:
        received = await receive(request, self.config, self.db, self.max_body_bytes)
        if isinstance(received, HTTPResponse):
            return received
        assert self.inbox is not None
        self.inbox.after_storing(received.stored, received.batch.statuses)
        return response.text(ACKNOWLEDGEMENT)

    async def _pending(self, request: Request) -> HTTPResponse:
        """The ingest's nudge: wake the workers of the contacts given (they read the database)."""
        contacts = await read_pending(request, self.config.app_secret)
        if isinstance(contacts, HTTPResponse):
            return contacts
        assert self.inbox is not None
        for contact_id in contacts:
            self.inbox.wake(contact_id)
        self.client.kick()  # held replies the ingest released for these contacts go out now
        logger.debug("nudged for %d contacts", len(contacts))
        return response.json({"woken": len(contacts)}, status=202)


class Inbox:
    """The stored messages' way to the bot: one sequential worker per contact."""

    def __init__(self, channel: WhatsAppInput, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> None:
        self.channel = channel
        self.on_new_message = on_new_message
        self.workers: dict[int, asyncio.Task] = {}
        self._dirty: set[int] = set()  # contacts woken while their worker was looking
        self._ready: asyncio.Event | None = None
        self._app: Any = None
        self._background: set[asyncio.Task] = set()
        self._sweeper: asyncio.Task | None = None  # not in _background: it never ends, idle() ignores it
        self._client_started = False

    @property
    def ready(self) -> asyncio.Event:
        if self._ready is None:
            self._ready = asyncio.Event()
        return self._ready

    async def start(self, app: Any) -> None:
        """After the server started: start the client's delivery loop, then hand the bot what is
        still pending (stored before a restart, or by the ingest while this process was away), and
        keep sweeping for pending rows nobody woke.
        """
        self._app = app
        try:
            await _call(self.channel.client.start)
            self._client_started = True
        except Exception as error:  # noqa: BLE001 - the webhook must still store what arrives
            logger.error("WhatsApp client did not start (%s)", type(error).__name__)
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def _sweep_forever(self) -> None:
        await self._bot_ready()
        self.ready.set()
        while True:
            try:
                await self.sweep()
            except Exception as error:  # noqa: BLE001 - e.g. the database restarting: next sweep
                logger.error("pending messages not swept (%s)", type(error).__name__)
            await asyncio.sleep(self.channel.sweep_interval)

    async def sweep(self) -> list[int]:
        """Wake every contact with pending messages and no worker: at start-up, what a stopped process
        left; later, what the ingest stored when its nudge did not arrive. Their window is updated
        first (the ingest may not have got that far), so the bot's replies are not held.
        """
        pending = await asyncio.to_thread(store.contacts_with_pending, self.channel.db)
        idle = {contact_id: at for contact_id, at in pending.items() if contact_id not in self.workers}
        if idle:
            logger.info("sweep: pending messages of %d contacts picked up", len(idle))
        await self._contacts_wrote(idle)
        for contact_id in idle:
            self.wake(contact_id)
        return list(idle)

    async def stop(self) -> None:
        """Workers stop where they are (their rows stay pending for the next start); the client closes."""
        tasks = [*self.workers.values(), *self._background, *([self._sweeper] if self._sweeper else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._sweeper = None
        if self._client_started:
            try:
                await _call(self.channel.client.close)
            except Exception as error:  # noqa: BLE001
                logger.warning("WhatsApp client did not close cleanly (%s)", type(error).__name__)
            self._client_started = False

    def after_storing(self, stored: list[store.Stored], statuses: list[StatusUpdate]) -> None:
        """Once a webhook's messages are stored, after the acknowledgement: the 24-hour window
        (before any reply is queued), then the contacts' workers, then the statuses.
        """
        if stored or statuses:
            self._spawn(self._follow_up(stored, statuses))

    async def _follow_up(self, stored: list[store.Stored], statuses: list[StatusUpdate]) -> None:
        await self._contacts_wrote(store.latest_writes(stored))
        for contact_id, bodies in flood_notices(stored).items():
            try:
                await _call(self.channel.client.enqueue, contact_id, bodies, source=FLOOD_SOURCE)
            except Exception as error:  # noqa: BLE001
                logger.error("contact %s: flood notice not queued (%s)", contact_id, type(error).__name__)
        for contact_id in dict.fromkeys(s.contact_id for s in stored if s.for_bot):
            self.wake(contact_id)
        client = self.channel.client
        for status in statuses:
            try:
                await _call(client.apply_status, status)
            except Exception as error:  # noqa: BLE001
                logger.error("status %s of %s not applied (%s)", status.status, status.wamid, type(error).__name__)

    async def _contacts_wrote(self, latest: dict[int, Any]) -> None:
        for contact_id, at in latest.items():
            try:
                await _call(self.channel.client.contact_wrote, contact_id, at)
            except Exception as error:  # noqa: BLE001
                logger.error("contact %s: window not updated (%s)", contact_id, type(error).__name__)

    def wake(self, contact_id: int) -> None:
        """Make sure the contact's pending messages get handled (starts its worker if idle)."""
        self._dirty.add(contact_id)
        if contact_id not in self.workers:
            self.workers[contact_id] = asyncio.get_running_loop().create_task(self._work(contact_id))

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def idle(self, timeout: float = 30.0) -> None:
        """Until no worker is busy (for tests and orderly shutdowns)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (self.workers or self._background) and loop.time() < deadline:
            await asyncio.sleep(0.02)

    async def _work(self, contact_id: int) -> None:
        db = self.channel.db
        try:
            await self.ready.wait()
            while True:
                self._dirty.discard(contact_id)
                try:
                    message = await asyncio.to_thread(store.next_pending, db, contact_id)
                except Exception as error:  # noqa: BLE001 - e.g. the database is restarting
                    logger.error("contact %s: pending messages not read (%s)", contact_id, type(error).__name__)
                    await asyncio.sleep(self.channel.retry_delay)
                    continue
                if message is None:
                    if contact_id in self._dirty:
                        continue
                    return
                await self._handle(message)
        finally:
            if self.workers.get(contact_id) is asyncio.current_task():
                del self.workers[contact_id]

    async def _handle(self, message: store.Pending) -> None:
        db = self.channel.db
        try:
            if message.media_id and not message.media_path:
                message = await self._download(message)
            receipt = asyncio.get_running_loop().create_task(self._mark_read(message.wamid))
            await self._bot_ready()
            await self._triage_during_handoff(message)
            await self.on_new_message(self._user_message(message, receipt))
            outcome = await self._nlu_outcome(message)
            await asyncio.to_thread(store.mark_handled, db, message.id, outcome)
            self.channel.counts.messages.labels("handled").inc()
            if outcome is not None:
                self.channel.counts.fallbacks.labels(str(outcome[1]).lower()).inc()
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - retried, then failed; never the content in logs
            gave_up = await asyncio.to_thread(store.record_failure, db, message.id, self.channel.max_attempts)
            self.channel.counts.messages.labels("failed" if gave_up else "retried").inc()
            if gave_up:
                logger.error(
                    "message %s (inbound %s) failed after %d attempts (%s)",
                    message.wamid, message.id, message.attempts + 1, type(error).__name__,
                )
                return
            logger.warning(
                "message %s (inbound %s) attempt %d failed (%s): retrying",
                message.wamid, message.id, message.attempts + 1, type(error).__name__,
            )
            await asyncio.sleep(self.channel.retry_delay * 2**message.attempts)

    async def _nlu_outcome(self, message: store.Pending) -> tuple[str | None, bool] | None:
        """The turn Rasa just finished, read back from its tracker store (`nlu_outcome`). Never raises:
        the turn is done, and a retry would run it twice.
        """
        agent = getattr(getattr(self._app, "ctx", None), "agent", None)
        tracker_store = getattr(agent, "tracker_store", None)
        if tracker_store is None:
            return None
        try:
            tracker = await tracker_store.retrieve(message.sender_id)
            return nlu_outcome(tracker.events, message.wamid) if tracker is not None else None
        except Exception as error:  # noqa: BLE001 - the message is handled all the same
            logger.warning("message %s: NLU outcome not read (%s)", message.wamid, type(error).__name__)
            return None

    async def _triage_during_handoff(self, message: store.Pending) -> None:
        """A nurse holds the conversation, so Rasa (paused) answers nothing. Two things cannot wait for
        the nurse: a red flag gets the emergency guidance at once (the domain's `utter_emergency`) and
        the ticket turns urgent; a STOP withdraws every consent at once and is confirmed
        (`utter_opt_out_confirmed`). The nurse sees both messages in the inbox.
        """
        agent = getattr(getattr(self._app, "ctx", None), "agent", None)
        intent = lexicon_intent(message.rasa_text or "")
        if agent is None or intent not in ("emergency", "opt_out"):
            return
        ticket = await asyncio.to_thread(handoff.open_ticket_for, self.channel.db, message.contact_id)
        if ticket is None:
            return  # not paused: Rasa's LexiconIntentClassifier, rules and ConsentPolicy answer
        if intent == "opt_out":
            how = f"{WhatsAppInput.name()}:stop"
            await asyncio.to_thread(consent.opt_out, self.channel.db, message.contact_id, how)
        tracker = await agent.tracker_store.get_or_create_tracker(message.sender_id)
        answer = "utter_emergency" if intent == "emergency" else "utter_opt_out_confirmed"
        said = await agent.nlg.generate(answer, tracker, WhatsAppInput.name())
        if said:
            output = WhatsAppOutput(self.channel.client, self.channel.db, message.contact_id,
                                    counts=self.channel.counts)
            await output.send_response(message.sender_id, said)
        if intent == "opt_out":
            logger.info("message %s: opt-out during handoff (ticket %s)", message.wamid, ticket.id)
            return
        await asyncio.to_thread(handoff.open_ticket, self.channel.db, message.contact_id, "emergency",
                                language=ticket.language, summary=ticket.summary)
        logger.warning("message %s: red flag during handoff, ticket %s now urgent", message.wamid, ticket.id)

    def _user_message(self, message: store.Pending, receipt: asyncio.Task | None = None) -> UserMessage:
        metadata: dict[str, Any] = {"wamid": message.wamid, "contact_id": message.contact_id, "type": message.type}
        if message.context_wamid:
            metadata["context"] = {
                "wamid": message.context_wamid,
                "biz_opaque_callback_data": message.biz_opaque_callback_data,
            }
        if message.media_id:
            metadata["media"] = {"inbound_id": message.id, "path": message.media_path, "mime": message.media_mime}
        return UserMessage(
            text=message.rasa_text,
            output_channel=WhatsAppOutput(self.channel.client, self.channel.db, message.contact_id,
                                          counts=self.channel.counts, received_at=message.received_at,
                                          receipt=receipt),
            sender_id=message.sender_id,
            input_channel=WhatsAppInput.name(),
            message_id=message.wamid,
            metadata=metadata,
        )

    async def _download(self, message: store.Pending) -> store.Pending:
        """The attachment, through the client, into the media directory (named by ids only, encrypted)."""
        assert message.media_id is not None
        data, mime = await _call(self.channel.client.download_media, message.media_id)
        mime = (mime or message.media_mime or "application/octet-stream").split(";")[0].strip()
        extension = mimetypes.guess_extension(mime) or ".bin"
        relative = f"{message.contact_id}/{message.id}{extension}"
        await asyncio.to_thread(crypto.write_file, self.channel.media_dir / relative, data)
        await asyncio.to_thread(store.attach_media, self.channel.db, message.id, relative, mime)
        logger.info("message %s: media stored as %s", message.wamid, relative)
        return dataclasses.replace(message, media_path=relative, media_mime=mime)

    async def _mark_read(self, wamid: str) -> None:
        """Blue ticks and the typing indicator while the bot thinks; a failure costs nothing else."""
        try:
            await _call(self.channel.client.mark_read, wamid, typing=True)
        except Exception as error:  # noqa: BLE001
            logger.info("message %s: read receipt not sent (%s)", wamid, type(error).__name__)

    async def _bot_ready(self) -> None:
        """Rasa ignores messages while it has no model loaded: wait for it rather than lose them."""
        while True:
            agent = getattr(getattr(self._app, "ctx", None), "agent", None)
            if agent is None and not hasattr(getattr(self._app, "ctx", None), "agent"):
                return  # not a Rasa server (tests mount the channel in a plain Sanic app)
            if agent is not None and agent.is_ready():
                return
            await asyncio.sleep(BOT_READY_POLL_SECONDS)

