"""Outgoing alerts, so nobody waits unseen when no inbox page is open: a JSON POST to
HANDOFF_WEBHOOK_URL when a ticket starts waiting and when it breaches the SLA.

Ids, reason and priority only (the receiver may be a chat room). With HANDOFF_WEBHOOK_SECRET set,
each POST carries `X-Clinic-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`, the same
scheme Meta uses for its webhooks, so the receiver can refuse forged pages. What was announced is remembered
in this process: after a restart, waiting tickets are announced again (better twice than never);
a failed POST is retried on the next pass.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging

import aiohttp

from clinic import handoff
from clinic.db import Database

logger = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Clinic-Signature-256"


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Alerts:
    def __init__(self, db: Database, url: str, secret: str = "", interval: float = 2.0) -> None:
        self.db, self.url, self.secret, self.interval = db, url, secret, interval
        self.announced: set[tuple[str, int]] = set()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="handoff-alerts")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            while True:
                try:
                    await self.once(http)
                except Exception as error:  # noqa: BLE001 - the loop must outlive a bad pass
                    logger.warning("handoff alerts pass failed: %s", type(error).__name__)
                await asyncio.sleep(self.interval)

    async def once(self, http: aiohttp.ClientSession) -> None:
        items = await asyncio.to_thread(handoff.queue, self.db)
        for item in items:
            if item.ticket.status.value != "waiting":
                continue
            for event, due in (("ticket_waiting", True), ("sla_breached", item.sla_breached)):
                key = (event, item.ticket.id)
                if due and key not in self.announced and await self._post(http, event, item):
                    self.announced.add(key)

    async def _post(self, http: aiohttp.ClientSession, event: str, item: handoff.QueueItem) -> bool:
        body = {"event": event, "ticket_id": item.ticket.id, "priority": item.ticket.priority,
                "reason": item.ticket.reason, "waiting_seconds": int(item.waiting_seconds)}
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self.secret:
            headers[SIGNATURE_HEADER] = signature(self.secret, data)
        try:
            async with http.post(self.url, data=data, headers=headers) as answer:
                if answer.status < 300:
                    return True
                logger.warning("handoff alert %s for ticket %s: HTTP %s", event, item.ticket.id, answer.status)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
            logger.warning("handoff alert %s for ticket %s failed: %s", event, item.ticket.id, type(error).__name__)
        return False
