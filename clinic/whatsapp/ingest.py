"""`python -m clinic.whatsapp.ingest`: Meta's webhook, acknowledged without waiting for Rasa.

Rasa's event loop also runs the model, so a webhook answered there waits for predictions (seconds
under load, and Meta retries what is slow to answer). This small process takes the webhook instead,
on the same paths as the channel (`/webhooks/whatsapp/webhook`, `GET /webhooks/whatsapp/` health):

1. the same checks as the channel (`clinic.whatsapp.receive`: 413, 403, 400);
2. the messages stored (once per wamid), the contacts' 24-hour window opened (held replies are
   released, and the bot's replies are never held for a window already open) and the status
   callbacks applied to the outbox, in one transaction with the webhooks that arrived meanwhile;
   only then 200. A database failure is answered 500, so Meta delivers again; nothing here
   touches Rasa.
3. after the acknowledgement: a nudge to the Rasa channel (`POST /webhooks/whatsapp/pending`, signed
   with the app secret) naming the contacts with new messages: their workers take what is pending
   in stored order. Nudges are coalesced (one in flight; ids that arrive meanwhile go in the next).
   A lost nudge (Rasa restarting) loses nothing: the channel sweeps for pending rows at start-up and
   every few seconds.

Settings: `WHATSAPP_INGEST_HOST`, `WHATSAPP_INGEST_PORT` (default 5006), the `WHATSAPP_*` secrets,
`RASA_URL` (where the channel is) and `DATABASE_URL`. Logs carry ids only.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import aiohttp
from sanic import Blueprint, Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from clinic import metrics
from clinic.db import Database, database
from clinic.settings import require_safe_to_start, settings
from clinic.web import freeze_startup_objects, harden
from clinic.whatsapp import store
from clinic.whatsapp.receive import (
    ACKNOWLEDGEMENT,
    FLOOD_SOURCE,
    MAX_BODY_BYTES,
    PENDING_ROUTE,
    PENDING_SIGNATURE_HEADER,
    Received,
    flood_notices,
    handshake,
    pending_body,
    receive,
    sign_pending,
)
from clinic.whatsapp.types import GraphConfig, WebhookBatch

logger = logging.getLogger(__name__)
T = TypeVar("T")

URL_PREFIX = "/webhooks/whatsapp"
NUDGE_TIMEOUT_SECONDS = 10.0


def pending_url(rasa_url: str) -> str:
    """The channel's nudge route on a Rasa server."""
    return f"{rasa_url.rstrip('/')}{URL_PREFIX}{PENDING_ROUTE}"


class Nudger:
    """Tells the Rasa channel which contacts have new messages; at most one request in flight."""

    def __init__(self, url: str, app_secret: str, timeout: float = NUDGE_TIMEOUT_SECONDS) -> None:
        self.url = url
        self.app_secret = app_secret
        self.timeout = timeout
        self.sent = 0  # nudges the channel accepted (for tests and logs)
        self._due: set[int] = set()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._wake = asyncio.Event()
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def nudge(self, contact_ids: list[int]) -> None:
        """Queue a nudge for these contacts (never blocks; the request goes from the background)."""
        if not contact_ids or self._wake is None:
            return
        self._due.update(contact_ids)
        self._wake.set()

    async def idle(self, timeout: float = 10.0) -> None:
        """Until nothing is waiting to be sent (for tests)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (self._due or (self._wake is not None and self._wake.is_set())) and loop.time() < deadline:
            await asyncio.sleep(0.02)

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            contacts, self._due = self._due, set()
            if contacts:
                await self._send(contacts)

    async def _send(self, contacts: set[int]) -> None:
        assert self._session is not None
        body = pending_body(contacts)
        headers = {"Content-Type": "application/json", PENDING_SIGNATURE_HEADER: sign_pending(self.app_secret, body)}
        try:
            async with self._session.post(self.url, data=body, headers=headers) as reply:
                if reply.status >= 300:
                    raise RuntimeError(f"HTTP {reply.status}")
            self.sent += 1
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - the channel's sweep finds these rows anyway
            logger.warning("nudge for %d contacts not delivered (%s): the channel's sweep will find them",
                           len(contacts), type(error).__name__ or "error")


class Writer:
    """The ingest's database writes, one at a time in one thread: SQLite takes one writer at a time,
    and several threads would only queue in its busy handler (sleeping up to 100 ms a try, unfairly).
    The webhooks (messages and status callbacks) that arrive while a store is running are stored
    together, in the next transaction (one commit for all).
    """

    def __init__(self, db: Callable[[], Database], client: Callable[[], Any] | None = None) -> None:
        self._db = db
        self._client = client  # the sending client: its window and status steps run in each store's transaction
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-writer")
        self._waiting: list[tuple[WebhookBatch, asyncio.Future]] = []
        self._draining = False
        self._drainer: asyncio.Task | None = None

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(function, *args))

    async def save(self, batch: WebhookBatch) -> list[store.Stored]:
        """`store.save` for one webhook (grouped with others arriving meanwhile)."""
        if not batch.messages and not batch.statuses:
            return []
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._waiting.append((batch, future))
        if not self._draining:
            self._draining = True
            self._drainer = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                group, self._waiting = self._waiting, []
                try:
                    stored = await self.run(self._save, WebhookBatch(
                        messages=[m for batch, _ in group for m in batch.messages],
                        statuses=[s for batch, _ in group for s in batch.statuses]))
                except Exception as error:  # noqa: BLE001 - alone, each batch succeeds or fails on its own
                    if len(group) == 1:
                        _settle(group[0][1], error=error)
                        continue
                    for batch, future in group:
                        try:
                            _settle(future, await self.run(self._save, batch))
                        except Exception as single:  # noqa: BLE001
                            _settle(future, error=single)
                    continue
                new = {s.wamid: s for s in stored}
                for batch, future in group:  # a wamid twice in the group: new for the first only
                    _settle(future, [new.pop(m.wamid) for m in batch.messages if m.wamid in new])
        finally:
            self._draining = False

    def _save(self, batch: WebhookBatch) -> list[store.Stored]:
        client = self._client() if self._client is not None else None
        return store.save(self._db(), batch, apply_status=client and client.apply_status_in,
                          wrote=client and client.contacts_wrote_in)

    def close(self) -> None:
        self._executor.shutdown(wait=True)


def _settle(future: asyncio.Future, result: Any = None, error: BaseException | None = None) -> None:
    if future.done():  # the request went away (client disconnected)
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class Ingest:
    """The webhook routes of the ingest process (see the module docstring)."""

    def __init__(
        self,
        config: GraphConfig,
        *,
        pending_url: str,
        db: Database | None = None,
        client: Any = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        nudge_timeout: float = NUDGE_TIMEOUT_SECONDS,
    ) -> None:
        self.config = config
        self._db = db
        self._client = client
        self.max_body_bytes = max_body_bytes
        self.nudger = Nudger(pending_url, config.app_secret, nudge_timeout)
        self._after_ack: set[asyncio.Task] = set()
        self.writer = Writer(lambda: self.db, lambda: self.client)
        self.counts = metrics.IngestMetrics()

    @property
    def db(self) -> Database:
        return self._db or database()

    @property
    def client(self) -> Any:
        """The WhatsApp client, for the window and the statuses only: this process sends nothing."""
        if self._client is None:
            from clinic.whatsapp.client import WhatsAppClient

            self._client = WhatsAppClient(self.db, self.config)
        return self._client

    def blueprint(self) -> Blueprint:
        routes = Blueprint("whatsapp_ingest", url_prefix=URL_PREFIX)

        @routes.listener("after_server_start")
        async def start(_app: Any, _loop: Any = None) -> None:
            freeze_startup_objects()
            await self.nudger.start()

        @routes.listener("before_server_stop")
        async def stop(_app: Any, _loop: Any = None) -> None:
            await asyncio.gather(*self._after_ack, return_exceptions=True)  # the nudges of what was acknowledged
            await self.nudger.stop()
            await asyncio.to_thread(self.writer.close)

        @routes.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @routes.route("/webhook", methods=["GET"])
        async def verify(request: Request) -> HTTPResponse:
            return handshake(request, self.config.verify_token)

        @routes.route("/webhook", methods=["POST"], stream=True)
        async def receive_webhook(request: Request) -> HTTPResponse:
            return await self._receive(request)

        return routes

    async def _receive(self, request: Request) -> HTTPResponse:
        started = time.perf_counter()
        answer = await self._store(request)
        self.counts.ack_seconds.labels(str(answer.status)).observe(time.perf_counter() - started)
        return answer

    async def _store(self, request: Request) -> HTTPResponse:
        received = await receive(request, self.config, self.db, self.max_body_bytes, save=self.writer.save)
        if isinstance(received, HTTPResponse):
            return received
        if received.stored:
            task = asyncio.get_running_loop().create_task(self._notices_then_nudge(received))
            self._after_ack.add(task)
            task.add_done_callback(self._after_ack.discard)
        return response.text(ACKNOWLEDGEMENT)

    async def _notices_then_nudge(self, received: Received) -> None:
        """After the acknowledgement: the flood notices queued, then the nudge."""
        for contact_id, bodies in flood_notices(received.stored).items():  # sent by the channel's client
            try:
                await self.writer.run(functools.partial(self.client.enqueue, source=FLOOD_SOURCE), contact_id, bodies)
            except Exception as error:  # noqa: BLE001
                logger.error("contact %s: flood notice not queued (%s)", contact_id, type(error).__name__)
        self.nudger.nudge(received.contacts_for_bot)

    async def idle(self, timeout: float = 10.0) -> None:
        """Until every acknowledged webhook's notices and nudge are done (for tests)."""
        await asyncio.wait_for(asyncio.gather(*self._after_ack, return_exceptions=True), timeout)
        await self.nudger.idle(timeout)


def create_app(ingest: Ingest, name: str = "clinic_whatsapp_ingest") -> Sanic:
    app = Sanic(name)
    # The webhook route refuses past `max_body_bytes` itself (413, nothing kept); Sanic's ceiling, higher so the
    # rest of a refused body can be read off and the 413 arrives, cuts the connection of anything larger.
    harden(app, max_request_bytes=8 * ingest.max_body_bytes)
    app.blueprint(ingest.blueprint())
    metrics.add_route(app, found=metrics.process_registry(ingest.counts.collectors(),
                                                          [metrics.ClinicCollector(lambda: ingest.db)]))
    return app


def main(argv: list[str] | None = None) -> None:
    require_safe_to_start()
    s = settings()
    parser = argparse.ArgumentParser(prog="python -m clinic.whatsapp.ingest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default=s.whatsapp_ingest_host)
    parser.add_argument("--port", type=int, default=s.whatsapp_ingest_port)
    args = parser.parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logging.getLogger("clinic").addHandler(handler)
    logging.getLogger("clinic").setLevel(logging.INFO)
    ingest = Ingest(GraphConfig.from_settings(s), pending_url=pending_url(s.rasa_url))
    app = create_app(ingest)
    app.run(host=args.host, port=args.port, access_log=False, workers=1)


if __name__ == "__main__":
    main()
