"""`clinic outreach run [--once]` (also `python -m clinic.outreach`): the outreach worker.

A loop: settle the reminders due, tell about new results (`clinic.outreach.results`), close and make
waitlist offers, mark no-shows and settle the after-visit messages due, pause
`OUTREACH_INTERVAL_SECONDS`, again; the sending client's delivery loop runs alongside and sends what
the passes queue. `--once`: one pass, with the delivery loop sending as it goes, then deliver what
may go now and exit (for cron or a test). Once a day (and at start) it also runs the retention pass
of `clinic.rights`. SIGTERM or Ctrl-C ends the worker cleanly: the pass in progress finishes (each
message is its own transaction), the delivery loop stops once its sends in flight settled, exit 0.
Several workers may run at once: each message is decided by exactly one of them (see
`clinic.outreach.reminders`, `.results`, `.backfill`, `.followups`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
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
    client = WhatsAppClient(database(), GraphConfig.from_settings(settings()))
    try:
        if once:  # the delivery loop sends from the first message queued, not after the whole pass
            await client.start()
            await one_pass(client)
            await retention(client.db)
            await client.finish()
            return
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


def serve(once: bool) -> None:
    """Run the worker in this process (the CLI's `clinic outreach run` and `python -m clinic.outreach`)."""
    require_safe_to_start()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(run(once))
    logger.info("outreach worker stopped")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m clinic.outreach", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--once", action="store_true", help="one pass, then deliver what may go now and exit")
    serve(parser.parse_args().once)


if __name__ == "__main__":
    main()
