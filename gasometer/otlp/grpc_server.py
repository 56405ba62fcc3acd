"""OTLP/gRPC: `LogsService/Export` and `MetricsService/Export` on their own port.

Same receiver and rules as OTLP/HTTP. Requests are decoded here (not by grpc) so a bad
message is INVALID_ARGUMENT rather than an internal error; tokens come as
`authorization: Bearer …` metadata (UNAUTHENTICATED without); a store that refuses
(disk full) is UNAVAILABLE, which exporters retry. grpc enforces the body limit
(`max_body_bytes`) on the decompressed message (RESOURCE_EXHAUSTED).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NoReturn

import grpc
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from gasometer.errors import GasometerError, StorageFull
from gasometer.otlp import decode
from gasometer.otlp.receiver import OtlpReceiver

log = logging.getLogger("gasometer.otlp")
LOGS_SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"
METRICS_SERVICE = "opentelemetry.proto.collector.metrics.v1.MetricsService"
RETRY_AFTER_S = 30

TokenCheck = Callable[[str], bool]


def start_grpc(
    receiver: OtlpReceiver, host: str, port: int, token_ok: TokenCheck, max_bytes: int
) -> grpc.Server:
    """Start the OTLP/gRPC server on host:port (plaintext, like the HTTP server)."""
    options = [
        ("grpc.max_receive_message_length", max_bytes),
        ("grpc.max_send_message_length", max_bytes),
    ]
    server = grpc.server(
        ThreadPoolExecutor(max_workers=4, thread_name_prefix="otlp-grpc"), options=options
    )

    def export_logs(data: bytes, context: grpc.ServicerContext) -> Message:
        _authenticate(context, token_ok)
        request = _parse(ExportLogsServiceRequest(), data, context)
        return _run(lambda: receiver.export_logs(request), context)

    def export_metrics(data: bytes, context: grpc.ServicerContext) -> Message:
        _authenticate(context, token_ok)
        request = _parse(ExportMetricsServiceRequest(), data, context)
        return _run(lambda: receiver.export_metrics(request), context)

    for service, handler in ((LOGS_SERVICE, export_logs), (METRICS_SERVICE, export_metrics)):
        method = grpc.unary_unary_rpc_method_handler(
            handler, request_deserializer=None, response_serializer=_serialize
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(service, {"Export": method}),)
        )
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if server.add_insecure_port(address) == 0:
        raise GasometerError(f"cannot listen for OTLP/gRPC on {address}")
    server.start()
    log.info("OTLP/gRPC listening on %s", address)
    return server


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def _authenticate(context: grpc.ServicerContext, token_ok: TokenCheck) -> None:
    metadata = dict(context.invocation_metadata())
    scheme, _sep, token = str(metadata.get("authorization", "")).partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        _abort(context, grpc.StatusCode.UNAUTHENTICATED, "missing bearer token")
    if not token_ok(token.strip()):
        _abort(context, grpc.StatusCode.UNAUTHENTICATED, "invalid token")


def _parse(message: Any, data: bytes, context: grpc.ServicerContext) -> Any:
    try:
        return decode.parse(message, data, "protobuf")
    except GasometerError as exc:
        _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))


def _run(work: Callable[[], Message], context: grpc.ServicerContext) -> Message:
    try:
        return work()
    except StorageFull as exc:
        context.set_trailing_metadata((("retry-after", str(RETRY_AFTER_S)),))
        _abort(context, grpc.StatusCode.UNAVAILABLE, str(exc))
    except GasometerError as exc:
        _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    except Exception:
        log.exception("OTLP/gRPC export failed")
        _abort(context, grpc.StatusCode.INTERNAL, "internal error (logged)")


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    context.abort(code, message)
    raise AssertionError("unreachable")  # context.abort raises


def stop_grpc(server: grpc.Server) -> None:
    """Stop accepting calls and let running ones finish (a few seconds at most)."""
    server.stop(grace=3).wait()
