"""`python -m clinic.inbox [--host H] [--port P]`: serve the nurse inbox (defaults from INBOX_HOST/INBOX_PORT)."""

from __future__ import annotations

import argparse
import logging

from clinic.inbox.app import create_app
from clinic.settings import require_safe_to_start, settings


def main() -> None:
    require_safe_to_start()
    parser = argparse.ArgumentParser(prog="python -m clinic.inbox", description=__doc__)
    parser.add_argument("--host", default=settings().inbox_host)
    parser.add_argument("--port", type=int, default=settings().inbox_port)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app()
    # One process: the delivery loop and the session checks need no coordination beyond the database.
    app.run(host=args.host, port=args.port, access_log=False, workers=1, motd=False)


if __name__ == "__main__":
    main()
