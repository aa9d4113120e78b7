"""`python -m clinic.sandbox`: serve the sandbox with the clinic's WhatsApp settings.

The port comes from WHATSAPP_API_BASE_URL (default http://localhost:5070), so the bot and the
sandbox agree without a second setting; `--host`/`--port` or SANDBOX_HOST/SANDBOX_PORT override it.
"""

from __future__ import annotations

import argparse
import logging
import os
from urllib.parse import urlparse

from clinic.sandbox.app import create_app
from clinic.sandbox.state import Options
from clinic.settings import Settings, settings


def identity(s: Settings) -> dict:
    """The business number the sandbox pretends to be, from the same settings the bot reads."""
    return {
        "phone_number_id": s.whatsapp_phone_number_id,
        "access_token": s.whatsapp_access_token,
        "verify_token": s.whatsapp_verify_token,
        "api_version": s.whatsapp_api_version,
        "display_phone_number": os.environ.get("SANDBOX_DISPLAY_PHONE_NUMBER", "390200000000"),
        "waba_id": os.environ.get("SANDBOX_WABA_ID", "100000000000002"),
    }


def options(s: Settings) -> Options:
    return Options(webhook_url=s.whatsapp_webhook_url, app_secret=s.whatsapp_app_secret)


def main(argv: list[str] | None = None) -> None:
    s = settings()
    default_port = urlparse(s.whatsapp_api_base_url).port or 5070
    parser = argparse.ArgumentParser(prog="python -m clinic.sandbox", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("SANDBOX_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("SANDBOX_PORT", default_port)))
    args = parser.parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logging.getLogger("clinic").addHandler(handler)
    logging.getLogger("clinic").setLevel(logging.INFO)
    app = create_app(options(s), identity(s), name="clinic_sandbox")
    app.run(host=args.host, port=args.port, access_log=False, workers=1)  # one process: state is in memory


if __name__ == "__main__":
    main()
