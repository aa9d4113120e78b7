"""`python -m clinic.fhir [--host H] [--port P]`: serve the FHIR API and calendar feeds (FHIR_HOST/FHIR_PORT)."""

from __future__ import annotations

import argparse
import logging

from clinic.fhir.app import create_app
from clinic.settings import require_safe_to_start, settings


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m clinic.fhir", description=__doc__)
    parser.add_argument("--host", default=settings().fhir_host)
    parser.add_argument("--port", type=int, default=settings().fhir_port)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    require_safe_to_start()
    create_app().run(host=args.host, port=args.port, access_log=False, workers=1, motd=False)


if __name__ == "__main__":
    main()
