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
from litestar.router import Router
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
    otlp,
    reads,
    session,
    sql,
)
from gasometer.api.auth import Access, scope_guard
from gasometer.api.security import Scrubber, security_middleware
from gasometer.config import Settings
from gasometer.errors import GasometerError
from gasometer.model import ErrorBody
from gasometer.otlp.grpc_server import start_grpc, stop_grpc
from gasometer.otlp.receiver import OtlpReceiver
from gasometer.query.budgets import AlertMonitor
from gasometer.resources import WEB_DIR
from gasometer.runtime import Gasometer

log = logging.getLogger("gasometer.api")


def create_app(settings: Settings) -> Litestar:
    """Build the app for these settings; the data directory opens when it starts.

    Every route declares its scope in `opt["scope"]`; the app-level `scope_guard` enforces
    it (tests/test_scopes.py checks the whole route table).
    """
    scrub = Scrubber(settings.data_dir)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        gm = Gasometer.open(settings)
        hub = live.LiveHub(settings.ws_max_backlog_bytes, settings.ws_max_clients)
        gm.ingestor.listeners.append(hub.publish)
        monitor = AlertMonitor(gm.engine, settings, hub.publish_message)
        gm.ingestor.listeners.append(monitor.on_commit)
        app.state.alert_monitor = monitor
        app.state.gm = gm
        app.state.hub = hub
        receiver = OtlpReceiver(gm)
        gm.ingestor.listeners.append(receiver.on_commit)
        app.state.otlp = receiver
        grpc_server = None
        try:
            if settings.otlp_grpc_port is not None:
                registry = app.state.access.registry
                grpc_server = start_grpc(
                    receiver,
                    settings.host,
                    settings.otlp_grpc_port,
                    lambda token: "ingest" in registry.grants(token),
                    settings.max_body_bytes,
                )
            yield
        finally:
            if grpc_server is not None:
                stop_grpc(grpc_server)
            receiver.close()
            gm.close()
            hub.close()

    return Litestar(
        route_handlers=[
            *ingest.routes,
            *otlp.routes,
            *hooks.routes,
            *imports.routes,
            *maintenance.routes,
            *reads.routes,
            *sql.routes,
            *analytics.routes,
            *metrics.routes,
            *session.routes,
            live.live_socket,
            create_static_files_router(
                path="/", directories=[WEB_DIR], html_mode=True, opt={"scope": "public"}
            ),
        ],
        lifespan=[lifespan, sql.lifespan],
        state=State({"access": Access.from_settings(settings), "scrub": scrub}),
        guards=[scope_guard],
        middleware=[security_middleware, metrics.timing_middleware],
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
            openapi_router=Router(
                "/schema", route_handlers=[], include_in_schema=False, opt={"scope": "public"}
            ),
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


def _scrubbed(request: Request, message: str) -> str:
    """An error message without file-system paths (data dir, home, any absolute path)."""
    scrub: Scrubber = request.app.state.scrub
    return scrub(message)


def _user_error(request: Request, exc: GasometerError) -> Response[ErrorBody]:
    body = ErrorBody(error=_scrubbed(request, str(exc)), status=exc.status)
    return Response(body, status_code=exc.status)


def _http_error(request: Request, exc: HTTPException) -> Response[ErrorBody]:
    message = exc.detail
    extra = getattr(exc, "extra", None)
    if extra:
        message = f"{message}: {extra}"
    headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
    body = ErrorBody(error=_scrubbed(request, str(message)), status=exc.status_code)
    return Response(body, status_code=exc.status_code, headers=headers)


def _internal_error(request: Request, exc: Exception) -> Response[ErrorBody]:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return Response(ErrorBody(error="internal error (logged)", status=500), status_code=500)
