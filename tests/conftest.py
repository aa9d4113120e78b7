"""Shared fixtures: real databases (a fresh SQLite file per test; PostgreSQL when reachable)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from clinic import migrate, model_cache
from clinic.db import Database, database
from clinic.demo import seed
from clinic.models import metadata
from clinic.settings import settings

pytest_plugins = ["tests.whatsapp_sandbox", "tests.browser"]

POSTGRES_ENV = "CLINIC_TEST_POSTGRES_URL"
# A Monday well inside the demo's horizon, without holidays in its first week.
DEMO_TODAY = date(2027, 3, 1)
DEMO_NOW = datetime(2027, 3, 1, 7, 0, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def clean_settings(monkeypatch) -> Iterator[None]:
    """Each test reads settings afresh, so monkeypatched environment variables apply."""
    monkeypatch.setenv("CLINIC_TIMEZONE", "Europe/Rome")
    settings.cache_clear()
    yield
    settings.cache_clear()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throw-away PostgreSQL database for this test run, dropped at the end."""
    server = os.environ.get(POSTGRES_ENV)
    if not server:
        pytest.skip(f"PostgreSQL tests skipped: set {POSTGRES_ENV} (e.g. postgresql://postgres@127.0.0.1/test)")
    name = f"clinic_test_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT", future=True)
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:  # noqa: BLE001 - any failure to reach it means "skip", said clearly
        pytest.skip(f"PostgreSQL tests skipped: {POSTGRES_ENV} is set but unusable ({type(error).__name__})")
    yield make_url(server).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _fresh(url: str) -> Database:
    db = Database(url)
    metadata.drop_all(db.engine)
    metadata.create_all(db.engine)
    return db


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_db(request, tmp_path) -> Iterator[Database]:
    """An empty clinic database, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'clinic.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    db = _fresh(url)
    yield db
    db.dispose()


@pytest.fixture
def db(tmp_path) -> Iterator[Database]:
    """An empty clinic database in a fresh SQLite file."""
    db = _fresh(f"sqlite:///{tmp_path / 'clinic.db'}")
    yield db
    db.dispose()


@pytest.fixture
def demo_db(db) -> Database:
    """The demo clinic with slots from DEMO_TODAY."""
    seed(db, today=DEMO_TODAY)
    return db


@pytest.fixture
def any_demo_db(any_db) -> Database:
    seed(any_db, today=DEMO_TODAY)
    return any_db


@pytest.fixture(scope="session")
def rasa_model() -> Path:
    """The model for the current data and config: trained only when no cached one matches."""
    return model_cache.ensure_model()


@pytest.fixture
def clinic_db(tmp_path, monkeypatch) -> Database:
    """The demo clinic, seeded from today, as the actions' DATABASE_URL."""
    url = f"sqlite:///{tmp_path / 'clinic.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    settings.cache_clear()
    database.cache_clear()
    migrate.upgrade(url)
    seed(database())
    yield database()
    database().dispose()
    database.cache_clear()
