"""Patients' data requests (`/requests`): staff see them; an admin approves or rejects each one.

Both decisions are final (an export leaves the clinic, an erasure cannot be undone), so they are
an admin's, taken on a page that says what will happen; `clinic.rights` does the work.
"""

from __future__ import annotations

from sanic import response
from sanic.request import Request

from clinic import rights


def register(app, *, login_required, page, message, run, db) -> None:
    """Add the data requests' routes to the inbox app."""

    @app.get("/requests")
    @login_required
    async def requests_page(request: Request):
        return page("requests.html", request, requests=await run(rights.open_requests, db()))

    @app.post("/requests/<request_id:int>/<decision:(approve|reject)>")
    @login_required(admin=True)
    async def decide(request: Request, request_id: int, decision: str):
        staff_id = request.ctx.staff.id
        try:
            if decision == "approve":
                await run(rights.approve, db(), app.ctx.client, request_id, staff_id)
            else:
                await run(rights.reject, db(), request_id, staff_id)
        except rights.RightsError as error:
            return message(request, 409, "Already decided", f"{error}.", back="/requests")
        return response.redirect("/requests", status=303)
