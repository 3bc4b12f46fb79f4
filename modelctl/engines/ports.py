"""Whether an engine can listen where it is asked to: used by the launcher (engines/process) and by
the Ray Serve app run on its own (engines/ray_app), which the launcher starts."""

from __future__ import annotations

import socket


def listen_error(host: str, port: int) -> OSError | None:
    """Why `host:port` (an IPv4 or IPv6 address) cannot be listened on now; None when it can."""
    try:
        socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET).close()
    except OSError as exc:
        return exc
    return None
