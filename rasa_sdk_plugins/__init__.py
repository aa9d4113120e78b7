"""rasa_sdk's plugin hook (rasa_sdk.plugin imports this package by name when the action server starts):
Prometheus `/metrics` on the action server's port and every action run timed (clinic.metrics).

`rasa run actions` finds it in the working directory (Rasa puts it on sys.path) or installed with the
project (pyproject.toml lists it).
"""

from __future__ import annotations

import sys

import pluggy

hookimpl = pluggy.HookimplMarker("rasa_sdk")


def init_hooks(manager: pluggy.PluginManager) -> None:
    manager.register(sys.modules[__name__])


@hookimpl
def attach_sanic_app_extensions(app) -> None:
    from clinic import metrics

    metrics.attach_to_action_server(app)
