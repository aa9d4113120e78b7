"""What every web app of the clinic does at its edge (the inbox, the sandbox, the webhook ingest, FHIR):
security headers on every answer, a ceiling on request bodies, and streamed bodies read up to a limit.
One place, so a new app cannot forget one of them. Also, for the long-lived servers that share SQLite's
write turn (Rasa, the action server, the ingest): their start-up objects frozen out of garbage collection.
"""

from __future__ import annotations

import gc

from sanic import Sanic
from sanic.request import Request
from sanic.response import HTTPResponse

# Strict by default: scripts, styles and images only from the app itself, no framing, no referrer,
# and no caching of pages that may show patient data.
STRICT_CSP = "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def freeze_startup_objects() -> None:
    """For a server once started: what it loaded (modules, Rasa's model) lives as long as the process, yet
    every full garbage collection scans it and stops all threads meanwhile — 667 ms over the Rasa process's
    ~1M objects, ~60 ms in the ingest or the action server — one of them maybe holding SQLite's write turn
    that the webhook ingest waits for. Frozen, those objects are skipped (bench/RESULTS.md).
    """
    gc.freeze()


def harden(app: Sanic, *, max_request_bytes: int, csp: str = STRICT_CSP) -> None:
    """Security headers on every answer of `app` (a handler may set its own first) and Sanic's own
    request size limit (413 before a handler runs; streamed webhook routes also count as they read).
    """
    app.config.REQUEST_MAX_SIZE = max_request_bytes
    headers = {"Content-Security-Policy": csp, **SECURITY_HEADERS}

    @app.on_response
    async def _security_headers(_request: Request, answer: HTTPResponse) -> None:
        for key, value in headers.items():
            answer.headers.setdefault(key, value)


async def read_body(request: Request, max_bytes: int) -> bytes | None:
    """The raw body of a streamed request, or None when it is larger than allowed (nothing more is kept)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        return None
    body = bytearray()
    while True:
        chunk = await request.stream.read()
        if chunk is None:
            return bytes(body)
        body += chunk
        if len(body) > max_bytes:
            return None
