"""The admins' KPI dashboard (`/kpi`) and its CSV (`/kpi.csv`): `clinic.kpi.report` for a period and
filters, and a few figures week by week as inline SVG bar charts (the inbox's CSP allows no script or
style from elsewhere, and none is needed). Also Prometheus' `/metrics` (`clinic.metrics`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from urllib.parse import urlencode

from sanic import response
from sanic.request import Request
from sqlalchemy import select

from clinic import kpi, metrics
from clinic.db import Database
from clinic.models import Location, Specialty
from clinic.settings import settings

DEFAULT_WEEKS = 8
CHART_WIDTH, CHART_HEIGHT, BAR_GAP = 480, 120, 6


class BadFilters(ValueError):
    """A filter a person typed that cannot be used; the message says which."""


def _choices(db: Database) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    with db.reading() as session:
        locations = session.execute(select(Location.key, Location.name).order_by(Location.name)).all()
        specialties = session.execute(select(Specialty.key, Specialty.name_en).order_by(Specialty.name_en)).all()
    return [tuple(row) for row in locations], [tuple(row) for row in specialties]


def filters_from(args: dict, db: Database, today: date | None = None) -> kpi.Filters:
    """The query string's period and filters; by default the last DEFAULT_WEEKS weeks up to today."""
    today = today or datetime.now(settings().zone).date()
    default_first = today - timedelta(days=today.weekday() + 7 * (DEFAULT_WEEKS - 1))
    try:
        first = date.fromisoformat(args.get("from") or default_first.isoformat())
        last = date.fromisoformat(args.get("to") or today.isoformat())
    except ValueError:
        raise BadFilters("Dates are YYYY-MM-DD.") from None
    if last < first:
        raise BadFilters("The period ends before it begins.")
    locations, specialties = _choices(db)
    location, specialty = args.get("location") or None, args.get("specialty") or None
    if location and location not in dict(locations):
        raise BadFilters(f"There is no location {location!r}.")
    if specialty and specialty not in dict(specialties):
        raise BadFilters(f"There is no specialty {specialty!r}.")
    return kpi.Filters(first, last, location, specialty)


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    week: str
    text: str


@dataclass(frozen=True)
class Chart:
    key: str
    label: str
    bars: list[Bar]


def charts(weekly: list[tuple[date, dict[str, kpi.Figure]]]) -> list[Chart]:
    """One bar chart per trend figure: a bar per week, scaled to the highest week (n/a draws no bar)."""
    out = []
    width = (CHART_WIDTH - BAR_GAP * max(len(weekly) - 1, 0)) / max(len(weekly), 1)
    for key in kpi.TREND_KEYS:
        figures = [(first, week[key]) for first, week in weekly if key in week]
        if not figures:
            continue
        top = max((f.value or 0) for _, f in figures) or 1
        bars = []
        for i, (first, figure) in enumerate(figures):
            height = (figure.value or 0) / top * (CHART_HEIGHT - 20)
            bars.append(Bar(i * (width + BAR_GAP), CHART_HEIGHT - height, width, height,
                            first.strftime("%d %b"), figure.text))
        out.append(Chart(key, figures[0][1].label, bars))
    return out


def register(app, *, login_required, page, run, db) -> None:
    """Add the dashboard's routes to the inbox app (admins only), and Prometheus' `/metrics`."""
    metrics.add_route(app, db)

    def load(args: dict) -> tuple[kpi.Filters, list[kpi.Figure], list]:
        filters = filters_from(args, db())
        return filters, kpi.report(db(), filters), kpi.trends(db(), filters)

    def args_of(request: Request) -> dict:
        return {name: request.args.get(name, "") for name in ("from", "to", "location", "specialty")}

    @app.get("/kpi")
    @login_required(admin=True)
    async def kpi_page(request: Request):
        locations, specialties = await run(_choices, db())
        try:
            filters, figures, weekly = await run(load, args_of(request))
        except BadFilters as error:
            return page("message.html", request, status=400, title="Cannot show these figures", text=str(error),
                        back="/kpi")
        query = urlencode({"from": filters.first, "to": filters.last, "location": filters.location or "",
                           "specialty": filters.specialty or ""})
        return page("kpi.html", request, filters=filters, figures=figures, charts=charts(weekly),
                    locations=locations, specialties=specialties, csv_url=f"/kpi.csv?{query}",
                    chart_width=CHART_WIDTH, chart_height=CHART_HEIGHT)

    @app.get("/kpi.csv")
    @login_required(admin=True)
    async def kpi_csv(request: Request):
        try:
            filters = await run(filters_from, args_of(request), db())
        except BadFilters as error:
            return response.text(str(error), status=400)
        figures = await run(kpi.report, db(), filters)
        name = f"kpi-{filters.first}-{filters.last}.csv"
        return response.text(kpi.csv_text(figures), content_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})
