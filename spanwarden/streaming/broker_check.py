"""Is there a Kafka broker at the bootstrap address? Asked once before `serve --kafka` or `worker` starts, so
that a wrong address is one line, not a minute of retries and a traceback."""

from __future__ import annotations

import asyncio
import logging
import socket

from aiokafka import AIOKafkaClient
from aiokafka.errors import KafkaError

FIX = "start the broker, or fix --kafka / --bootstrap (SPANWARDEN_KAFKA_BOOTSTRAP)"


class BrokerUnreachable(RuntimeError):
    """No Kafka broker answered at the bootstrap address (the message says what to do)."""


def _hosts(bootstrap: str) -> list[tuple[str, int]]:
    out = []
    for item in (h.strip() for h in bootstrap.split(",")):
        if not item:
            continue
        item = item.removeprefix("kafka://")
        host, _, port = item.rpartition(":") if ":" in item else (item, ":", "9092")  # Kafka's default port
        if not host or not port.isdigit():
            raise BrokerUnreachable(f"{item!r} is not host:port; give Kafka's bootstrap as host:port[,host:port]")
        out.append((host.strip("[]"), int(port)))
    if not out:
        raise BrokerUnreachable(f"no Kafka bootstrap address given: {FIX}")
    return out


def _connect_errors(hosts: list[tuple[str, int]], timeout_s: float) -> list[str]:
    """Why each host refused a TCP connection; empty once one accepts."""
    errors = []
    for host, port in hosts:
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                return []
        except OSError as exc:
            errors.append(f"{host}:{port}: {exc.strerror or exc.__class__.__name__}")
    return errors


async def check(bootstrap: str, timeout_s: float = 10.0) -> None:
    """Return once a broker at `bootstrap` has answered a metadata request; else raise BrokerUnreachable."""
    errors = _connect_errors(_hosts(bootstrap), min(timeout_s, 5.0))
    if errors:
        raise BrokerUnreachable(f"cannot reach Kafka at {bootstrap} ({'; '.join(errors)}): {FIX}")
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # its own error lines would repeat ours
    try:
        await asyncio.wait_for(client.bootstrap(), timeout_s)
    except (KafkaError, OSError, TimeoutError) as exc:
        raise BrokerUnreachable(f"{bootstrap} accepts connections but did not answer as a Kafka broker "
                                f"({exc.__class__.__name__}): {FIX}") from None
    finally:
        quiet.setLevel(level)
        await client.close()


def check_now(bootstrap: str, timeout_s: float = 10.0) -> None:
    asyncio.run(check(bootstrap, timeout_s))
