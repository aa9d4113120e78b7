"""Meta's webhook envelopes, signatures and delivery, so the bot is exercised as Meta exercises it.

Deliveries go through one asyncio queue worked by one task: a slow or failing bot never holds up a
Graph API answer, and webhooks reach the bot in the order they were produced (tests can still ask
for duplicates or a different status order). Each attempt's HTTP status is recorded.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging

import aiohttp

from clinic.sandbox.state import Patient, SandboxState

log = logging.getLogger(__name__)


def meta_json(payload: dict) -> bytes:
    """Serialise as Meta does: compact, non-ASCII characters and every slash escaped.

    The signature covers these exact bytes, so a receiver that re-serialises before checking fails
    here just as it would against Meta.
    """
    return json.dumps(payload, ensure_ascii=True, separators=(",", ":")).replace("/", "\\/").encode()


def signature(body: bytes, app_secret: str) -> str:
    """The `X-Hub-Signature-256` value: HMAC-SHA256 of the raw body with the app secret."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def envelope(state: SandboxState, value: dict) -> dict:
    """Meta's outer shape around one `messages` field change."""
    config = state.config
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": config["waba_id"],
                "changes": [
                    {
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": config["display_phone_number"],
                                "phone_number_id": config["phone_number_id"],
                            },
                            **value,
                        },
                        "field": "messages",
                    }
                ],
            }
        ],
    }


def contact(patient: Patient, with_profile: bool = True) -> dict:
    """A `contacts[]` item: the phone only when Meta may share it, the BSUID always."""
    item: dict = {}
    if with_profile:
        item["profile"] = {"name": patient.name}
    if patient.wa_id and not patient.hide_phone:
        item["wa_id"] = patient.wa_id
    if patient.user_id:
        item["user_id"] = patient.user_id
    return item


def messages_value(pairs: list[tuple[Patient, dict]]) -> dict:
    """`value` for inbound messages; system messages carry no contacts array."""
    contacts, seen = [], set()
    for patient, message in pairs:
        if message.get("type") != "system" and patient.pid not in seen:
            seen.add(patient.pid)
            contacts.append(contact(patient))
    value: dict = {}
    if contacts:
        value["contacts"] = contacts
    value["messages"] = [message for _, message in pairs]
    return value


def status_value(state: SandboxState, record: dict, patient: Patient, status: str, errors: list | None) -> dict:
    """`value` for one status callback of a message the business sent."""
    now = int(state.now())
    item: dict = {"id": record["id"], "status": status, "timestamp": str(now)}
    if patient.wa_id and not (patient.hide_phone and record.get("to") is None):
        item["recipient_id"] = patient.wa_id
    if patient.user_id and not (status == "failed" and record.get("to")):
        item["recipient_user_id"] = patient.user_id
    if record.get("biz_opaque_callback_data") is not None:
        item["biz_opaque_callback_data"] = record["biz_opaque_callback_data"]
    if status == "failed":
        item["errors"] = errors or []
        return {"statuses": [item]}
    pricing = record["pricing"]
    conversation: dict = {"id": record["conversation_id"], "origin": {"type": pricing["category"]}}
    if status == "sent":
        conversation["expiration_timestamp"] = str(int(record["accepted_at"]) + 24 * 3600)
    item["conversation"] = conversation
    item["pricing"] = dict(pricing)
    return {"contacts": [contact(patient, with_profile=False)], "statuses": [item]}


class Deliverer:
    """The background queue that POSTs signed webhooks to the bot and records what it answered."""

    def __init__(self, state: SandboxState):
        self.state = state
        self.queue: asyncio.Queue | None = None
        self.done: dict[int, asyncio.Event] = {}
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.queue = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()

    def clear(self) -> None:
        """Drop deliveries not yet started (a reset must not wait for a slow or absent bot)."""
        while self.queue is not None and not self.queue.empty():
            record = self.queue.get_nowait()
            record["pending"] = False
            event = self.done.pop(record["id"], None)
            if event:
                event.set()
            self.queue.task_done()

    def enqueue(self, kind: str, value: dict, wamids: list[str], copies: int = 1) -> list[dict]:
        """Queue `copies` deliveries of the same signed body (copies > 1 = Meta's duplicate delivery)."""
        payload = envelope(self.state, value)
        records = []
        for copy in range(copies):
            record = {
                "id": self.state.next_id(),
                "kind": kind,
                "wamids": wamids,
                "duplicate": copy > 0,
                "url": None,
                "attempts": [],
                "status": None,
                "delivered": False,
                "pending": True,
                "payload": payload,
            }
            self.state.webhooks.append(record)
            self.done[record["id"]] = asyncio.Event()
            self.queue.put_nowait(record)
            records.append(record)
        return records

    async def wait(self, records: list[dict], timeout: float) -> None:
        """Until these deliveries are finished (delivered or out of retries), at most `timeout`."""
        events = [self.done[r["id"]].wait() for r in records if r["id"] in self.done]
        if events:
            await asyncio.wait_for(asyncio.gather(*events), timeout)

    async def idle(self, timeout: float) -> None:
        """Until the queue is empty: tests read deliveries only once they have happened."""
        await asyncio.wait_for(self.queue.join(), timeout)

    async def _run(self) -> None:
        async with aiohttp.ClientSession() as session:
            while True:
                record = await self.queue.get()
                try:
                    await self._deliver(session, record)
                except Exception:  # noqa: BLE001 - the worker must outlive any one delivery
                    log.exception("webhook delivery %s crashed", record["id"])
                finally:
                    record["pending"] = False
                    event = self.done.pop(record["id"], None)
                    if event:
                        event.set()
                    self.queue.task_done()

    async def _deliver(self, session: aiohttp.ClientSession, record: dict) -> None:
        options = self.state.options
        body = meta_json(record["payload"])
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "facebookexternalua",
            "X-Hub-Signature-256": signature(body, options.app_secret),
        }
        record["url"] = options.webhook_url
        for attempt in range(1 + max(0, options.webhook_retries)):
            if attempt:
                await asyncio.sleep(options.webhook_retry_delay * attempt)
            try:
                timeout = aiohttp.ClientTimeout(total=options.webhook_timeout)
                async with session.post(options.webhook_url, data=body, headers=headers, timeout=timeout) as reply:
                    await reply.read()
                    record["attempts"].append({"status": reply.status, "error": None, "at": self.state.now()})
                    record["status"] = reply.status
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
                record["attempts"].append({"status": None, "error": type(error).__name__, "at": self.state.now()})
                record["status"] = None
            if record["status"] is not None and 200 <= record["status"] < 300:
                record["delivered"] = True
                break
        log.info("webhook %s (%s) -> %s after %d attempt(s)", record["id"], record["kind"], record["status"],
                 len(record["attempts"]))
