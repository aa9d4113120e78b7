"""`python -m clinic.outreach [--once]`: the outreach worker (appointment reminders, waitlist
backfill, no-shows and after-visit messages).

A loop: settle the reminders due, close and make waitlist offers, mark no-shows and settle the
after-visit messages due, pause `OUTREACH_INTERVAL_SECONDS`, again; the sending client's
delivery loop runs alongside and sends what the passes queue. `--once`: one pass, deliver what may
go now, exit (for cron or a test). Several workers may run at once: each reminder is settled by
exactly one of them (see `clinic.outreach.reminders`, `.backfill`, `.followups`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from clinic.db import database
from clinic.outreach import backfill, followups, reminders
from clinic.settings import settings
from clinic.whatsapp.client import WhatsAppClient
from clinic.whatsapp.types import GraphConfig

logger = logging.getLogger("clinic.outreach")


async def one_pass(client: WhatsAppClient) -> list:
    """Settle what is due, job by job; a failure is logged (type only: no patient data) and the next
    pass retries. The jobs' results (None for a failed one).
    """
    results = []
    for name, job in (("reminder", reminders.send_due), ("waitlist", backfill.run_pass),
                      ("after-visit", followups.run_pass)):
        try:
            result = await asyncio.to_thread(job, client.db, client)
        except Exception as error:  # noqa: BLE001 - the worker must survive a bad pass
            logger.error("%s pass failed: %s", name, type(error).__name__)
            result = None
        if result is not None and any(vars(result).values()):
            logger.info("%s pass: %s", name, ", ".join(f"{k} {v}" for k, v in vars(result).items()))
        results.append(result)
    return results


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
