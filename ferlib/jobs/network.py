"""Addresses of the processes a distributed job spans: HOST:PORT parsing and a free local port."""

from __future__ import annotations

import socket

from ferlib.errors import FerError


def parse_address(address: str, what: str = "a chief's address") -> tuple[str, int]:
    """'HOST:PORT' -> (host, port), refused with one line when it is not that."""
    host, _, port = address.strip().rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise FerError(f"Expected {what} as HOST:PORT (say 10.0.0.5:8470); received {address!r}")
    return host, int(port)


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("", 0))
        return int(probe.getsockname()[1])
