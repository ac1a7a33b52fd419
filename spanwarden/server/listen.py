"""The listening socket, bound before a service writes anything: a busy port or an address that is not this
machine's is said in one line, and a service that cannot listen leaves the audit log untouched."""

from __future__ import annotations

import errno
import socket

# Who usually holds spanwarden's default ports, to say so when one is busy.
USUAL_HOLDERS = {4318: "an OpenTelemetry Collector often listens on 4318", 4317: "OTLP/gRPC's port"}


class ListenError(RuntimeError):
    """The service cannot listen where it was asked to (one line: what happened and what to do)."""


def bind(host: str, port: int, change: str = "--port / SPANWARDEN_PORT") -> socket.socket:
    """A listening TCP socket on host:port (port 0: any free port), for aiohttp's `SockSite`; `change` names
    the option that moves it."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ListenError(f"cannot listen on {host}:{port}: {host!r} is not an address of this machine "
                          f"({exc.strerror}); use --host / SPANWARDEN_HOST") from exc
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        raise ListenError(_why(host, port, exc, change)) from exc
    sock.setblocking(False)
    return sock


def _why(host: str, port: int, exc: OSError, change: str) -> str:
    if exc.errno == errno.EADDRINUSE:
        holder = f" ({USUAL_HOLDERS[port]})" if port in USUAL_HOLDERS else ""
        return (f"port {port} on {host} is already in use{holder}: stop what holds it, or run with "
                f"{change}")
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {host}:{port}: {host} is not an address of this machine; use --host"
    if exc.errno == errno.EACCES:
        return f"cannot listen on {host}:{port}: permission denied (ports below 1024 need privileges)"
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
