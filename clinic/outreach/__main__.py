"""`python -m clinic.outreach [--once]`: the outreach worker (appointment reminders, results ready).

A loop: settle the reminders due and tell about new results (`clinic.outreach.results`), pause
`OUTREACH_INTERVAL_SECONDS`, again; the sending client's delivery loop runs alongside and sends what
the passes queue. `--once`: one pass, deliver what may go now, exit (for cron or a test). Several
workers may run at once: each reminder and each result is decided by exactly one of them.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from clinic.db import database
from clinic.outreach import reminders
from clinic.outreach import results as results_ready
from clinic.settings import settings
from clinic.whatsapp.client import WhatsAppClient
from clinic.whatsapp.types import GraphConfig

logger = logging.getLogger("clinic.outreach")


async def one_pass(client: WhatsAppClient) -> reminders.PassResult | None:
    """Settle what is due; a failure is logged (type only: no patient data) and the next pass retries."""
    result = None
    try:
        result = await asyncio.to_thread(reminders.send_due, client.db, client)
    except Exception as error:  # noqa: BLE001 - the worker must survive a bad pass
        logger.error("reminder pass failed: %s", type(error).__name__)
    if result and (result.sent or result.skipped):
        logger.info("reminders: %d sent, %d skipped, %d left to the next pass", result.sent, result.skipped,
                    result.passed_by)
    try:
        told = await asyncio.to_thread(results_ready.send_due, client.db, client)
    except Exception as error:  # noqa: BLE001 - the worker must survive a bad pass
        logger.error("results-ready pass failed: %s", type(error).__name__)
    else:
        if told.sent or told.skipped:
            logger.info("results ready: %d sent, %d skipped", told.sent, told.skipped)
    return result


async def run(once: bool) -> None:
    client = WhatsAppClient(database(), GraphConfig.from_settings(settings()))
    try:
        if once:
            await one_pass(client)
            await client.deliver_due()
            return
        await client.start()
        while True:
            await one_pass(client)
            await asyncio.sleep(settings().outreach_interval_seconds)
    finally:
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m clinic.outreach", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--once", action="store_true", help="one pass, then deliver what may go now and exit")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(run(args.once))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
