"""The decode pool (spanwarden/embedded/decode_pool.py): OTLP bodies decoded and normalised in child processes
give the records, the errors and the answers the in-process path gives; a child killed or hung mid-request
is a 503 with Retry-After and a restarted child; nothing is left running after the service or its parent."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest
import requests
from google.protobuf import json_format

from spanwarden.collector.normalize import Normalizer
from spanwarden.collector.otlp_decode import JSON, PROTOBUF, MalformedPayload, decode_request
from spanwarden.collector.pricing import PriceTable
from spanwarden.embedded.decode_pool import ChildLost, DecodePool
from spanwarden.embedded.service import EmbeddedService
from spanwarden.settings import Settings

LIMIT = 200_000
BAD = [
    (b"\x0a\xff\xff", {"Content-Type": PROTOBUF}),
    (b"{oops", {"Content-Type": JSON}),
    (b"{}", {"Content-Type": "text/plain"}),
    (b"{}", {"Content-Type": JSON, "Content-Encoding": "br"}),
    (b"x" * (LIMIT + 1), {"Content-Type": PROTOBUF}),
    (gzip.compress(b"\0" * 1_000_000), {"Content-Type": PROTOBUF, "Content-Encoding": "gzip"}),
    (gzip.compress(b"\0" * 100)[:-4], {"Content-Type": PROTOBUF, "Content-Encoding": "gzip"}),
]


def _body(span_factory, agent: str = "agent-1", spans: int = 3, model: str = "gpt-4o") -> bytes:
    factory = span_factory(service__name=agent, deployment__environment__name="prod")
    for i in range(spans):
        factory.span(f"chat {model}", {"gen_ai.operation.name": "chat", "gen_ai.request.model": model,
                                       "gen_ai.usage.input_tokens": 1000 + i, "gen_ai.usage.output_tokens": 10})
    return factory.body()


def _start(tmp_path, processes: int) -> tuple[EmbeddedService, str]:
    service = EmbeddedService(Settings(port=0, state_dir=tmp_path, audit_fsync="never", admin_token="adm",
                                       max_body_bytes=LIMIT, decode_processes=processes))
    return service, f"http://127.0.0.1:{service.start_in_thread()}"


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """A service decoding on its loop and one decoding in a child process, side by side."""
    here, url_here = _start(tmp_path_factory.mktemp("in-process"), 0)
    pooled, url_pooled = _start(tmp_path_factory.mktemp("pool"), 1)
    yield url_here, (pooled, url_pooled)
    here.stop()
    pooled.stop()


def _records(url: str) -> int:
    return int(requests.get(f"{url}/healthz", timeout=5).json()["records"])


@pytest.mark.parametrize("body, headers", BAD)
def test_bad_bodies_get_the_same_one_line_answer_through_the_pool(both, body, headers):
    url_here, (_, url_pooled) = both
    answers = [requests.post(f"{url}/v1/traces", data=body, headers=headers, timeout=10)
               for url in (url_here, url_pooled)]
    assert answers[0].status_code in (400, 413, 415)
    assert [(a.status_code, a.json()) for a in answers[1:]] == [(answers[0].status_code, answers[0].json())]


def test_the_pool_gives_the_records_the_loop_would(span_factory):
    body = _body(span_factory, spans=5)
    as_json = json.dumps(_hex_ids(json_format.MessageToDict(decode_request(body, PROTOBUF)))).encode()
    expected = Normalizer(PriceTable.load()).records(decode_request(body, PROTOBUF))

    async def decoded() -> list:
        pool = DecodePool(2, None, (10.0, 30.0))
        await pool.start()
        try:
            return [await pool.records(body, PROTOBUF, "", LIMIT),
                    await pool.records(gzip.compress(as_json), JSON, "gzip", LIMIT)]
        finally:
            await pool.close()

    from_protobuf, from_json = asyncio.run(decoded())
    assert len(expected) == 5 and from_protobuf == expected
    assert from_json == expected


def _hex_ids(value):
    """The OTLP JSON mapping's ids are hex (protobuf's own JSON has them in base64)."""
    if isinstance(value, list):
        return [_hex_ids(v) for v in value]
    if isinstance(value, dict):
        return {k: base64.b64decode(v).hex() if k in ("traceId", "spanId", "parentSpanId") else _hex_ids(v)
                for k, v in value.items()}
    return value


def test_spans_through_the_pool_reach_the_pipeline(both, span_factory):
    _, (service, url) = both
    before = _records(url)
    answer = requests.post(f"{url}/v1/traces", data=_body(span_factory, "pooled-agent"),
                           headers={"Content-Type": PROTOBUF}, timeout=10)
    assert answer.status_code == 200
    assert _records(url) == before + 3
    assert service.call(lambda: "pooled-agent" in service.pipeline.agents)


def _when(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_child_killed_mid_request_is_a_503_with_retry_after_and_comes_back(both, span_factory):
    _, (service, url) = both
    pool = service.decode_pool
    assert pool is not None
    [pid] = pool.pids()
    os.kill(pid, signal.SIGSTOP)  # the body reaches it and waits there: killed mid-request
    answer: dict[str, requests.Response] = {}
    thread = threading.Thread(target=lambda: answer.setdefault("r", requests.post(
        f"{url}/v1/traces", data=_body(span_factory, "victim"), headers={"Content-Type": PROTOBUF}, timeout=20)))
    thread.start()
    _when(lambda: service.call(lambda: len(pool.children[0].pending)) == 1)
    os.kill(pid, signal.SIGKILL)
    thread.join(20)
    response = answer["r"]
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert "died" in response.json()["message"]
    _when(lambda: service.call(pool.pids) not in ([], [pid]))
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    ok = requests.post(f"{url}/v1/traces", data=_body(span_factory, "after"), headers={"Content-Type": PROTOBUF},
                       timeout=10)
    assert ok.status_code == 200 and service.call(lambda: "after" in service.pipeline.agents)
    assert service.call(lambda: pool.restarts) >= 1


def test_a_hung_child_is_killed_and_its_body_answered(span_factory):
    body = _body(span_factory)

    async def hang() -> tuple[Exception, list[int], int]:
        pool = DecodePool(1, None, (10.0, 30.0), answer_s=0.5)
        await pool.start()
        try:
            [pid] = pool.pids()
            os.kill(pid, signal.SIGSTOP)
            try:
                await pool.records(body, PROTOBUF, "", LIMIT)
            except ChildLost as exc:
                error: Exception = exc
            records = await pool.records(body, PROTOBUF, "", LIMIT)  # waits for the restarted child
            return error, pool.pids(), len(records) + 0 * pid
        finally:
            await pool.close()

    error, pids, records = asyncio.run(hang())
    assert "no answer within" in str(error) and records == 3 and len(pids) == 1


def test_a_new_price_table_reaches_the_children(tmp_path, span_factory):
    prices = tmp_path / "prices.json"
    body = _body(span_factory, spans=1, model="house-model")  # unpriced: the default price, then the file's

    async def costs() -> list[float]:
        pool = DecodePool(2, None, (10.0, 30.0))
        await pool.start()
        try:
            first = [(await pool.records(body, PROTOBUF, "", LIMIT))[0].cost_usd for _ in range(2)]
            prices.write_text(json.dumps({"version": "house-1", "models": {"house-model": {"input": 1000.0,
                                                                                         "output": 0.0}}}))
            await pool.set_prices(prices, (10.0, 30.0))
            return first + [(await pool.records(body, PROTOBUF, "", LIMIT))[0].cost_usd for _ in range(2)]
        finally:
            await pool.close()

    before_a, before_b, after_a, after_b = asyncio.run(costs())
    assert before_a == before_b == pytest.approx((1000 * 10 + 10 * 30) / 1e6)
    assert after_a == after_b == pytest.approx(1000 * 1000 / 1e6)


def test_errors_raised_in_the_child_are_the_receivers_own_classes():
    async def bad() -> Exception:
        pool = DecodePool(1, None, (10.0, 30.0))
        await pool.start()
        try:
            await pool.records(b"\x0a\xff\xff", PROTOBUF, "", LIMIT)
        except MalformedPayload as exc:
            return exc
        finally:
            await pool.close()
        raise AssertionError("no error")

    error = asyncio.run(bad())
    assert error.status == 400 and "not a valid OTLP" in str(error)


def test_stopping_leaves_no_process_behind(tmp_path):
    service, _ = _start(tmp_path, 2)
    assert service.decode_pool is not None
    pids = service.call(service.decode_pool.pids)
    assert len(pids) == 2 and all(psutil.pid_exists(p) for p in pids)
    service.stop()
    assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


PARENT = """
import asyncio, sys
from spanwarden.embedded.decode_pool import DecodePool
async def main():
    pool = DecodePool(1, None, (10.0, 30.0))
    await pool.start()
    print(*pool.pids(), flush=True)
    await asyncio.sleep(60)
asyncio.run(main())
"""


def test_a_parent_killed_outright_leaves_no_child():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())  # type: ignore[union-attr]
        assert psutil.pid_exists(child)
        parent.kill()  # SIGKILL: no close(); the child sees its socket's end of file
        parent.wait(10)
        _when(lambda: not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE)
    finally:
        parent.kill()


def test_a_service_whose_decode_processes_cannot_start_decodes_on_its_loop(tmp_path, monkeypatch, span_factory):
    monkeypatch.setattr(sys, "executable", "/bin/false")  # every child exits at once
    service, url = _start(tmp_path, 1)
    try:
        assert service.decode_pool is None
        answer = requests.post(f"{url}/v1/traces", data=_body(span_factory), headers={"Content-Type": PROTOBUF},
                               timeout=10)
        assert answer.status_code == 200 and _records(url) == 3
    finally:
        service.stop()
