"""`serve`: check the settings, open the bundles and their slots, then run uvicorn until Ctrl-C.

Everything that can be refused is refused before the port is bound (one `error:` line, exit
code 2 on the command line); loading the models happens while the server already answers
`/health` with 503.
"""

from __future__ import annotations

import logging

import uvicorn

from edge_et.errors import ModelError
from edge_et.serve.app import create_app
from edge_et.serve.opening import ServeSettings, check_settings, open_bundles
from edge_et.serve.state import ServerState


def serve(settings: ServeSettings, *, log_level: str = "info") -> None:
    check_settings(settings)
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    opened = open_bundles(settings)  # logs each bundle's slot plan
    state = ServerState(settings, opened)
    config = uvicorn.Config(
        create_app(state),
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)

    def stop() -> None:
        server.should_exit = True

    state.on_load_failure = stop
    server.run()
    if state.load_error:  # the models did not load: the server stopped itself
        raise ModelError(state.load_error)
