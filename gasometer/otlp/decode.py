"""OTLP request bodies to the official generated messages, and responses back.

Bodies are `application/x-protobuf` or `application/json` (OTLP's JSON mapping, whose
trace and span ids are hex rather than protobuf JSON's base64), optionally gzip'd. The
decompressed size is capped while inflating, so a gzip bomb costs at most the cap.
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any, Literal, TypeVar

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from gasometer.errors import BadRequest, GasometerError, PayloadTooLarge

Encoding = Literal["protobuf", "json"]
M = TypeVar("M", bound=Message)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_ID_FIELDS = ("traceId", "spanId", "trace_id", "span_id")
_CHUNK = 64 * 1024


class UnsupportedMediaType(GasometerError):
    """A Content-Type (or Content-Encoding) OTLP/HTTP does not define."""

    status = 415


def body_encoding(content_type: str) -> Encoding:
    """`protobuf` or `json` from a Content-Type header; 415 for anything else."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == PROTOBUF:
        return "protobuf"
    if media == JSON:
        return "json"
    raise UnsupportedMediaType(f"content type {media or '(none)'}: send {PROTOBUF} or {JSON}")


def inflate(body: bytes, content_encoding: str, limit: int) -> bytes:
    """The body without its Content-Encoding (gzip or none), at most `limit` bytes once
    inflated: inflation stops as soon as the limit is passed."""
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise UnsupportedMediaType(f"content encoding {encoding}: send gzip or none")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    parts: list[bytes] = []
    size = 0
    view = memoryview(body)
    try:
        for start in range(0, len(body), _CHUNK):
            data: bytes | memoryview = view[start : start + _CHUNK]
            while data and not inflater.eof:
                chunk = inflater.decompress(data, limit + 1 - size)
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"body over {limit} bytes once decompressed")
                parts.append(chunk)
                data = inflater.unconsumed_tail
            if inflater.eof:
                break
    except zlib.error as exc:
        raise BadRequest(f"body is not valid gzip: {exc}") from exc
    if not inflater.eof:
        raise BadRequest("body is truncated gzip")
    return b"".join(parts)


def parse(message: M, data: bytes, encoding: Encoding) -> M:
    """Fill `message` from a protobuf or OTLP/JSON body; 400 naming the problem if the
    body cannot be decoded."""
    if encoding == "protobuf":
        try:
            message.ParseFromString(data)
        except (DecodeError, RecursionError, ValueError) as exc:
            raise BadRequest(f"body is not a valid OTLP protobuf message: {exc}") from exc
        return message
    try:
        tree = json.loads(data)
        if not isinstance(tree, dict):
            raise BadRequest("OTLP/JSON body must be a JSON object")
        json_format.ParseDict(_hex_ids_to_base64(tree), message, ignore_unknown_fields=True)
    except BadRequest:
        raise
    except (ValueError, TypeError, RecursionError, json_format.ParseError) as exc:
        raise BadRequest(f"body is not valid OTLP/JSON: {exc}") from exc
    return message


def _hex_ids_to_base64(node: Any) -> Any:
    """OTLP/JSON writes trace and span ids as hex; protobuf's JSON parser wants base64."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in _ID_FIELDS and isinstance(value, str):
                try:
                    value = base64.b64encode(bytes.fromhex(value)).decode()
                except ValueError as exc:
                    raise BadRequest(f"{key} {value[:40]!r} is not hex") from exc
            out[key] = _hex_ids_to_base64(value)
        return out
    if isinstance(node, list):
        return [_hex_ids_to_base64(item) for item in node]
    return node


def serialize(message: Message, encoding: Encoding) -> tuple[bytes, str]:
    """A response message in the request's encoding, with its Content-Type."""
    if encoding == "protobuf":
        return message.SerializeToString(), PROTOBUF
    return json_format.MessageToJson(message, indent=None).encode(), JSON
