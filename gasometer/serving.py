"""Run the app under uvicorn on a socket bound first, so that an address in use (or one
this machine does not have) is one clear line instead of uvicorn's log and exit code 3."""

from __future__ import annotations

import errno
import socket
from typing import Any

from gasometer.config import Settings
from gasometer.errors import ConfigError


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port (not yet listening); ConfigError if it cannot be."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"{host}:{port} is already in use (another server running? pass --port)"
            ) from None
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    except (socket.gaierror, OverflowError) as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc}") from None
    return sock


def run(app: Any, settings: Settings, sock: socket.socket) -> None:
    """Serve `app` on `sock` until interrupted."""
    import uvicorn

    from gasometer.api.connections import server_options

    config = uvicorn.Config(
        app, log_level=settings.log_level, access_log=False, **server_options(settings)
    )
    uvicorn.Server(config).run(sockets=[sock])
