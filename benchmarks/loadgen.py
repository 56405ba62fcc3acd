"""A small, fast HTTP/1.1 load generator for ingest benchmarks.

Raw asyncio streams (uvloop when installed) over several keep-alive connections: each
connection sends one request, reads its response, and sends the next. Requests are
prepared in advance, so the client spends its time on the socket, not on JSON.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import msgspec

from gasometer.model import CostEvent, IngestResult

_encoder = msgspec.json.Encoder()
_result = msgspec.json.Decoder(IngestResult)


@dataclass
class LoadResult:
    """What one load run achieved."""

    requests: int
    seconds: float
    accepted: int
    duplicates: int
    failures: int
    latencies: list[float]

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds

    @property
    def events_per_s(self) -> float:
        return (self.accepted + self.duplicates) / self.seconds


def ingest_requests(port: int, token: str, batches: Sequence[Sequence[CostEvent]]) -> list[bytes]:
    """One ready-to-send `POST /api/ingest` per batch (a JSON object for a batch of one)."""
    out = []
    for batch in batches:
        body = _encoder.encode(batch[0] if len(batch) == 1 else list(batch))
        head = (
            f"POST /api/ingest HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        out.append(head.encode() + body)
    return out


def run(port: int, requests: Sequence[bytes], connections: int) -> LoadResult:
    """Send every request over `connections` keep-alive connections; wait for all answers."""
    try:
        import uvloop

        return uvloop.run(_run(port, requests, connections))
    except ImportError:
        return asyncio.run(_run(port, requests, connections))


async def _run(port: int, requests: Sequence[bytes], connections: int) -> LoadResult:
    queue = iter(requests)
    result = LoadResult(len(requests), 0.0, 0, 0, 0, [])
    streams = [await asyncio.open_connection("127.0.0.1", port) for _ in range(connections)]
    started = time.perf_counter()
    await asyncio.gather(
        *(_connection(reader, writer, queue, result) for reader, writer in streams)
    )
    result.seconds = time.perf_counter() - started
    for _, writer in streams:
        writer.close()
    return result


async def _connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    queue: Iterator[bytes],
    result: LoadResult,
) -> None:
    for request in queue:
        sent = time.perf_counter()
        writer.write(request)
        status, body = await _response(reader)
        result.latencies.append(time.perf_counter() - sent)
        if status != 202:
            result.failures += 1
            continue
        answer = _result.decode(body)
        result.accepted += answer.accepted
        result.duplicates += answer.duplicates


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)
