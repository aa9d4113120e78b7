"""rasa_sdk's plugin hook (rasa_sdk.plugin imports this package by name when the action server starts):
Prometheus `/metrics` on the action server's port and every action run timed (clinic.metrics),
connections from a busy Rasa kept open (`CONNECTION_PATIENCE_SECONDS`), and the start-up objects frozen
out of garbage collection (`clinic.web.freeze_startup_objects`).

`rasa run actions` finds it in the working directory (Rasa puts it on sys.path) or installed with the
project (pyproject.toml lists it).
"""

from __future__ import annotations

import sys

import pluggy

hookimpl = pluggy.HookimplMarker("rasa_sdk")

# Rasa opens a new connection for every action call and writes the request when its event loop gets
# to it; with many conversations at once the loop runs other turns' predictions first, seconds of them.
# Sanic closes a connection that stays silent for KEEP_ALIVE_TIMEOUT (5 s), even before its first
# request, and Rasa then drops the action's events: the patient got no answer (654 lost actions with
# 200 patients writing at once, bench/RESULTS.md). Rasa's own action timeout is 300 s.
CONNECTION_PATIENCE_SECONDS = 120


def init_hooks(manager: pluggy.PluginManager) -> None:
    manager.register(sys.modules[__name__])


@hookimpl
def attach_sanic_app_extensions(app) -> None:
    from clinic import metrics
    from clinic.web import freeze_startup_objects

    metrics.attach_to_action_server(app)
    app.register_listener(lambda _app, _loop=None: freeze_startup_objects(), "after_server_start")
    app.config.KEEP_ALIVE_TIMEOUT = CONNECTION_PATIENCE_SECONDS  # silence before (and between) requests
    app.config.REQUEST_TIMEOUT = CONNECTION_PATIENCE_SECONDS  # a request begun, not yet all written
