"""What every web app of the clinic does at its edge (the inbox, the sandbox, the webhook ingest):
security headers on every answer and a ceiling on request bodies. One place, so a new app cannot
forget one of them.
"""

from __future__ import annotations

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
