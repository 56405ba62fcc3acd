"""The Litestar application: routes, dependencies, errors, and the lifespan that opens
(and on shutdown flushes and closes) the data directory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar, Request, Response
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.static_files import create_static_files_router

from gasometer import __version__
from gasometer.api import (
    analytics,
    docs,
    hooks,
    imports,
    ingest,
    live,
    maintenance,
    metrics,
    reads,
    sql,
)
from gasometer.config import Settings
from gasometer.errors import GasometerError
from gasometer.model import ErrorBody
from gasometer.query.budgets import AlertMonitor
from gasometer.resources import WEB_DIR
from gasometer.runtime import Gasometer

log = logging.getLogger("gasometer.api")


def create_app(settings: Settings) -> Litestar:
    """Build the app for these settings; the data directory opens when it starts."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        gm = Gasometer.open(settings)
        hub = live.LiveHub(settings.ws_queue_size)
        gm.ingestor.listeners.append(hub.publish)
        monitor = AlertMonitor(gm.engine, settings, hub.publish_message)
        gm.ingestor.listeners.append(monitor.on_commit)
        app.state.alert_monitor = monitor
        app.state.gm = gm
        app.state.hub = hub
        app.state.token_digests = settings.token_digests()
        try:
            yield
        finally:
            gm.close()

    return Litestar(
        route_handlers=[
            *ingest.routes,
            *hooks.routes,
            *imports.routes,
            *maintenance.routes,
            *reads.routes,
            *sql.routes,
            *analytics.routes,
            *metrics.routes,
            live.live_socket,
            create_static_files_router(path="/", directories=[WEB_DIR], html_mode=True),
        ],
        lifespan=[lifespan],
        middleware=[metrics.timing_middleware],
        dependencies={
            "gm": Provide(_gasometer, sync_to_thread=False),
            "hub": Provide(_hub, sync_to_thread=False),
        },
        exception_handlers={
            GasometerError: _user_error,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
        openapi_config=OpenAPIConfig(
            title="Gasometer",
            version=__version__,
            path="/schema",
            render_plugins=docs.render_plugins(),
        ),
        request_max_body_size=settings.max_body_bytes,
        debug=False,
    )


def _gasometer(state: State) -> Gasometer:
    gm: Gasometer = state.gm
    return gm


def _hub(state: State) -> live.LiveHub:
    hub: live.LiveHub = state.hub
    return hub


def _user_error(_: Request, exc: GasometerError) -> Response[ErrorBody]:
    return Response(ErrorBody(error=str(exc), status=exc.status), status_code=exc.status)


def _http_error(_: Request, exc: HTTPException) -> Response[ErrorBody]:
    message = exc.detail
    extra = getattr(exc, "extra", None)
    if extra:
        message = f"{message}: {extra}"
    return Response(
        ErrorBody(error=str(message), status=exc.status_code), status_code=exc.status_code
    )


def _internal_error(request: Request, exc: Exception) -> Response[ErrorBody]:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return Response(ErrorBody(error="internal error (logged)", status=500), status_code=500)
