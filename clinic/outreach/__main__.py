"""`clinic outreach run [--once]` (also `python -m clinic.outreach`): the outreach worker.

A loop: settle the reminders due, tell about new results (`clinic.outreach.results`), close and make
waitlist offers, mark no-shows and settle the after-visit messages due, pause
`OUTREACH_INTERVAL_SECONDS`, again; the sending client's delivery loop runs alongside and sends what
the passes queue. Once a day (and at start) it also runs the retention pass of `clinic.rights`.
SIGTERM or Ctrl-C ends the worker cleanly: the pass in progress finishes (each batch of messages is
its own transaction), the delivery loop stops once its sends in flight settled, exit 0.

`--once`: one pass, then deliver what may go now and exit (for cron or a test). The delivery runs in
a second process (`--deliver`, started by this one), from the first message queued: the pass and
the sending then use two cores instead of sharing one (the GIL). 10,000 reminders due at once went
out at 61 % of the phone number's rate with both in one process, at 96-97 % this way (load 3-4,
bench/RESULTS.md). On SQLite the pass leaves the write lock to the child between its batches
(`client.wait_for_room`). When the pass is over, this process closes the child's stdin; the child
delivers what may go now and exits, and so does this one, with the child's failure if it failed.
SIGTERM or Ctrl-C: passed on to the child (its sends in flight settle, the rest stays queued), the
pass in progress finishes, exit 0.

Several workers may run at once: each message is decided by exactly one of them (see
`clinic.outreach.reminders`, `.results`, `.backfill`, `.followups`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import subprocess
import sys
import time

from clinic import rights
from clinic.db import database
from clinic.outreach import backfill, followups, reminders
from clinic.outreach import results as results_ready
from clinic.settings import require_safe_to_start, settings
from clinic.whatsapp.client import WhatsAppClient
from clinic.whatsapp.types import GraphConfig

logger = logging.getLogger("clinic.outreach")
RETENTION_EVERY = 24 * 3600  # seconds between retention passes (and at start)


async def one_pass(client: WhatsAppClient) -> list:
    """Settle what is due, job by job; a failure is logged (type only: no patient data) and the next
    pass retries. The jobs' results (None for a failed one).
    """
    results = []
    for name, job in (("reminder", reminders.send_due), ("results-ready", results_ready.send_due),
                      ("waitlist", backfill.run_pass), ("after-visit", followups.run_pass)):
        try:
            result = await asyncio.to_thread(job, client.db, client)
        except Exception as error:  # noqa: BLE001 - the worker must survive a bad pass
            logger.error("%s pass failed: %s", name, type(error).__name__)
            result = None
        if result is not None and any(vars(result).values()):
            logger.info("%s pass: %s", name, ", ".join(f"{k} {v}" for k, v in vars(result).items()))
        results.append(result)
    return results


async def retention(db) -> None:
    """Message content past MESSAGE_RETENTION_DAYS goes, and erasures waiting for Rasa finish (counts only)."""
    try:
        result = await asyncio.to_thread(rights.retention_pass, db)
    except Exception as error:  # noqa: BLE001 - the worker must survive; tomorrow's pass retries
        logger.error("retention pass failed: %s", type(error).__name__)
        return
    logger.info("retention: %d received and %d sent messages emptied, %d files, %d Rasa histories, %d erasures "
                "finished", result.inbound, result.outbound, result.media, result.histories, result.erasures_finished)


async def run(once: bool) -> None:
    if once:
        await run_once()
        return
    client = WhatsAppClient(database(), GraphConfig.from_settings(settings()))
    try:
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
        await client.start()
        logger.info("outreach worker started: a pass every %ss", settings().outreach_interval_seconds)
        retained_at = -RETENTION_EVERY
        while not stop.is_set():
            await one_pass(client)
            if time.monotonic() - retained_at >= RETENTION_EVERY:
                await retention(client.db)
                retained_at = time.monotonic()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), settings().outreach_interval_seconds)
        logger.info("outreach worker stopping: finishing the delivery in progress")
    finally:
        await client.close()


async def run_once() -> None:
    """`--once`: the pass here, the delivery in a child process (see the module docstring)."""
    client = WhatsAppClient(database(), GraphConfig.from_settings(settings()))
    client.delivery_elsewhere = True  # the pass still waits while 5 s of sending is queued
    delivery = subprocess.Popen([sys.executable, "-m", "clinic.outreach", "--deliver"], stdin=subprocess.PIPE)
    stopped = False

    def stop() -> None:
        nonlocal stopped
        stopped = True
        client.delivery_elsewhere = False  # nothing drains the outbox now: the pass stops waiting for it
        delivery.send_signal(signal.SIGTERM)

    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop)
    try:
        await one_pass(client)
        if not stopped:
            await retention(client.db)
    finally:
        delivery.stdin.close()  # the pass is over: deliver what may go now, then exit
        code = await asyncio.to_thread(delivery.wait)
    if code:
        logger.error("delivery process exited with %s", code)
        raise SystemExit(1)


class _Closed(asyncio.Protocol):
    def __init__(self, closed: asyncio.Event) -> None:
        self.closed = closed

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()


async def deliver() -> None:
    """`--deliver`: the delivery loop of `--once` in its own process, until its stdin closes (the pass
    is over: then what may go now is sent) or SIGTERM (the sends in flight settle).
    """
    # No wake-up reaches this loop from the pass's process: it looks for new rows every half second.
    # Four times the sends in flight (0.8 s of sending at 80/s): a slot is held until its answer is
    # committed, and the pass's process holds SQLite's write lock a batch at a time.
    client = WhatsAppClient(database(), GraphConfig.from_settings(settings()), poll_interval=0.5, concurrency=64)
    loop = asyncio.get_running_loop()
    stop, passed = asyncio.Event(), asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await loop.connect_read_pipe(lambda: _Closed(passed), sys.stdin)
    try:
        await client.start()
        logger.info("outreach delivery process started")
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({stopping, asyncio.create_task(passed.wait())}, return_when=asyncio.FIRST_COMPLETED)
        if not stop.is_set():
            finishing = asyncio.create_task(client.finish())
            await asyncio.wait({stopping, finishing}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        await client.close()


def serve(once: bool, sending: bool = False) -> None:
    """Run the worker in this process (the CLI's `clinic outreach run` and `python -m clinic.outreach`);
    `sending`: the delivery process of `--once`.
    """
    require_safe_to_start()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(deliver() if sending else run(once))
    logger.info("outreach %s stopped", "delivery process" if sending else "worker")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m clinic.outreach", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--once", action="store_true", help="one pass, then deliver what may go now and exit")
    parser.add_argument("--deliver", action="store_true",
                        help="the delivery process that --once starts: sends until its stdin closes, then exits")
    args = parser.parse_args()
    serve(args.once, sending=args.deliver)


if __name__ == "__main__":
    main()
