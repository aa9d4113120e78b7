"""Schema migrations (Alembic), callable from the CLI and from tests."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from clinic.settings import PROJECT_ROOT, settings


def alembic_config(url: str | None = None) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", (url or settings().database_url).replace("%", "%%"))
    return config


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Bring the database to the newest schema; safe to run on every start."""
    command.upgrade(alembic_config(url), revision)
