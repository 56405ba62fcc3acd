"""OTLP/HTTP: `POST /v1/logs` and `POST /v1/metrics`, Claude Code's telemetry as costs.

Protobuf or OTLP/JSON, gzip'd or not; the answer is an `Export…ServiceResponse` in the
request's encoding (with `partial_success` when some records could not be stored).
Bad bodies are 4xx with the house error shape; a store that refuses (disk full) is 503
with Retry-After, which OTLP exporters retry.
"""

from __future__ import annotations

import asyncio

import msgspec
from litestar import Request, Response, post
from litestar.datastructures import State

from gasometer.errors import PayloadTooLarge, StorageFull
from gasometer.model import ErrorBody
from gasometer.otlp.receiver import OtlpReceiver, Signal
from gasometer.runtime import Gasometer

RETRY_AFTER_S = 30


async def _export(signal: Signal, request: Request, gm: Gasometer) -> Response[bytes]:
    body = await request.body()
    if len(body) > gm.settings.max_body_bytes:
        raise PayloadTooLarge(f"body over {gm.settings.max_body_bytes} bytes")
    receiver = receiver_of(request.app.state)
    content_type = request.headers.get("content-type", "")
    encoding = request.headers.get("content-encoding", "")
    try:
        data, media = await asyncio.to_thread(receiver.handle, signal, body, content_type, encoding)
    except StorageFull as exc:
        error = msgspec.json.encode(ErrorBody(error=str(exc), status=503))
        return Response(
            error,
            status_code=503,
            media_type="application/json",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    return Response(data, status_code=200, media_type=media)


def receiver_of(state: State) -> OtlpReceiver:
    """The app's OTLP receiver (opened in the lifespan)."""
    receiver: OtlpReceiver = state.otlp
    return receiver


@post("/v1/logs", opt={"scope": "ingest"}, status_code=200)
async def otlp_logs(request: Request, gm: Gasometer) -> Response[bytes]:
    """OTLP/HTTP logs export: each `claude_code.api_request` record becomes a cost event."""
    return await _export("logs", request, gm)


@post("/v1/metrics", opt={"scope": "ingest"}, status_code=200)
async def otlp_metrics(request: Request, gm: Gasometer) -> Response[bytes]:
    """OTLP/HTTP metrics export: cost and token usage of sessions without log records."""
    return await _export("metrics", request, gm)


routes = [otlp_logs, otlp_metrics]
