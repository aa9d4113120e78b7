"""The nurse inbox: a small server-rendered web app over `clinic.handoff` (`python -m clinic.inbox`)."""

from clinic.inbox.app import create_app

__all__ = ["create_app"]
