"""The normaliser's equivalence corpus: OTLP request bodies and the records the normaliser made of them,
saved in tests/collector/data/normalize_corpus.bin.gz, so that a faster normaliser can be held to exactly
the same output for every input.

The bodies: every request the normaliser saw in the collector, fuzz, server-route, embedded-service,
span-splitter and dashboard tests (real openai-v2, OpenInference, Traceloop, Anthropic, Pydantic AI, OpenAI
Agents and MCP instrumentation against loopback fakes; each distinct span once; long strings cut to CAP
characters to keep the file small, still past MAX_TEXT), the soak's traffic, the normalise bench's mix (60
spans of each family) and `generated` requests:
seeded random spans over every attribute the normaliser reads, with values of every AnyValue type, edge
values, duplicate and alias keys. The price table is saved with them (prices.json may change; the records
may not).

Rebuild (only when the records are meant to change): capture the tests' requests with a plugin that saves
each `Normalizer.iter_records` request serialised to a folder, then
`python -m tests.collector.normalize_corpus CAPTURED_DIR`."""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import sys
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from spanwarden.collector import attributes as A
from spanwarden.collector.normalize import Normalizer
from spanwarden.collector.pricing import ModelPrice, PriceTable

CORPUS = Path(__file__).parent / "data" / "normalize_corpus.bin.gz"
CAP = 600  # characters kept of a long string: past MAX_TEXT (256), so cutting is still exercised
T0 = 1_800_000_000_000_000_000

STRINGS: dict[str, list[str]] = {
    "name": ["billing-bot", "unknown_service:python", "agent", "OpenAI Agent",
             "3f2a9c1e-1b2c-4d5e-8f90-1a2b3c4d5e6f", "run-0123456789abcdef0123", "", " ", "triage", "billing",
             "support/billing", "x" * 300, "é-agent"],
    "operation": ["chat", "CHAT", "text_completion", "embeddings", "embedding", "completion", "chat_completion",
                  "execute_tool", "invoke_agent", "create_agent", "generate_content", "rerank", ""],
    "kind": ["LLM", "llm", "TOOL", "AGENT", "CHAIN", "chain", "workflow", "task", "EMBEDDING", "RETRIEVER",
             "chat_model", "custom", ""],
    "provider": ["openai", "OpenAI", "anthropic", "aws.bedrock", ""],
    "model": ["gpt-4o", "gpt-4o-2024-08-06", "gpt-4o-mini", "claude-sonnet-4-5", "text-embedding-3-small",
              "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "no-such-model-9", "", "m" * 300],
    "tool": ["sql_query", "read_file", "write_file", "delete_file", "lookup_invoice", "", "t" * 300],
    "sql": ["SELECT * FROM invoices WHERE id = 1", "DELETE FROM customers", "UPDATE orders SET a = 1",
            "UPDATE orders SET a = 1 WHERE id = 2", "DROP TABLE t", "INSERT INTO audit VALUES (1)",
            "WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", "not sql at all", "",
            "SELECT 1; DROP TABLE u"],
    "summary": ["DELETE customers", "SELECT orders", "deleteMany", "FLUSHALL", "find users", ""],
    "url": ["https://erp.example.com/invoices/INV-7?token=secret", "http://api.openai.com/v1/chat", "http://[bad",
            "not a url", "https://files.example.org/upload", ""],
    "host": ["erp.example.com", "api.openai.com", "x.openai.azure.com", "bedrock-runtime.us-east-1.amazonaws.com",
             "127.0.0.1", ""],
    "method": ["GET", "post", "DELETE", "PATCH", "BREW", ""],
    "messaging": ["send", "publish", "receive", "process", "settle", ""],
    "effect": ["read", "WRITE", "destructive", "maybe", ""],
    "text": ["conv-1", "sess-9", "", "c" * 300, "0123456789abcdef0123456789abcdef", "a b c", "true", "1", "yes",
             "TRUE", "no", "denied:req-7", "ar-3", "tools/call", "tools/list", "/data/report.csv", "{\"q\": 1}"],
}
_POOL = {
    A.SERVICE_NAME: "name", A.AGENT_ID: "name", A.AGENT_NAME: "name", A.EXPLICIT_AGENT: "name",
    A.INHERITED_AGENT: "name", A.AGENT_VERSION: "text", A.SERVICE_VERSION: "text", A.OPERATION[0]: "operation",
    A.OPERATION[1]: "operation", A.RESPONSE_ID: "text", A.FINGERPRINT: "text", A.ERROR_TYPE: "text",
    A.MCP_METHOD: "text", A.RESOURCE: "text", A.FILE_PATH: "text", A.APPROVAL: "text", A.EFFECT: "effect",
    A.DB_QUERY_SUMMARY: "summary", A.SERVER_ADDRESS: "host", A.URL_PATH: "text", A.ENTITY_NAME: "tool",
}
for _names, _pool in ((A.SPAN_AGENT_NAME, "name"), (A.SPAN_KIND, "kind"), (A.PROVIDER, "provider"),
                      (A.MODEL, "model"), (A.TOOL_NAME, "tool"), (A.DB_QUERY, "sql"), (A.DB_OPERATION, "summary"),
                      (A.URL_FULL, "url"), (A.HTTP_METHOD, "method"), (A.MESSAGING_OPERATION, "messaging")):
    for _name in _names:
        _POOL[_name] = _pool
SPAN_NAMES = ["chat gpt-4o", "invoke_agent billing", "invoke_agent agent", "create_agent triage",
              "agent run: refunds",
              "agent 3f2a9c1e-1b2c-4d5e-8f90-1a2b3c4d5e6f", "tools/call read_file", "MCP send tools/call  ",
              "MCP send tools/call write_file extra", "write_file", "delete_file", "", "n" * 300, "é" * 200]
NUMBERS: list[Any] = [0, 1, 7, 1200, 99_999_999, 100_000_001, -5, 2**63 - 1, -(2**63), 0.0, 0.5, 12.7, -1.0,
                      float("nan"), float("inf"), 1e12, "12", "1e3", " 5 ", "x", "", True, False]
JUNK_KEYS = ["acme.tokens_used", "llm.token_count.aggregated", "gen_ai.usage.details.cache_read_tokens",
             "http.response.status_code", "", "tokenizer", "input.mime_type", "é.token"]


def _any(rng: random.Random, value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(string_value=str(value))


def _value(rng: random.Random, key: str) -> AnyValue:
    roll = rng.random()
    if roll < 0.05:
        return AnyValue()  # no value set
    if roll < 0.1:
        return rng.choice([AnyValue(bytes_value=b"\x00\xff"), AnyValue(array_value={"values": [_any(rng, 3)]}),
                           AnyValue(kvlist_value={"values": [KeyValue(key="k", value=_any(rng, "v"))]}),
                           AnyValue(string_value_strindex=3)])
    if key in A.NUMERIC or roll < 0.2:
        return _any(rng, rng.choice(NUMBERS))
    return _any(rng, rng.choice(STRINGS[_POOL.get(key, "text")]))


def _attributes(rng: random.Random, keys: list[str], count: int) -> list[KeyValue]:
    out = []
    for _ in range(count):
        key = rng.choice(JUNK_KEYS) if rng.random() < 0.15 else rng.choice(keys)
        out.append(KeyValue(key=key, value=_value(rng, key)))
    return out


def generated(seed: int, requests: int = 300) -> list[bytes]:
    """Seeded random requests over every attribute the normaliser reads (resource and span)."""
    rng = random.Random(seed)
    resource_keys, span_keys = list(A.RESOURCE_KEYS), list(A.SPAN_KEYS)
    out = []
    for _ in range(requests):
        request = ExportTraceServiceRequest()
        for _ in range(rng.choice((1, 1, 2, 3))):
            resource_spans = request.resource_spans.add()
            resource_spans.resource.attributes.extend(_attributes(rng, resource_keys, rng.randrange(0, 7)))
            for _ in range(rng.choice((1, 1, 2))):
                spans = resource_spans.scope_spans.add().spans
                for _ in range(rng.randrange(0, 6)):
                    start = T0 + rng.randrange(10**12)
                    span = spans.add(
                        trace_id=rng.randbytes(rng.choice((16, 16, 0))), span_id=rng.randbytes(8),
                        parent_span_id=rng.randbytes(rng.choice((8, 0))), name=rng.choice(SPAN_NAMES),
                        start_time_unix_nano=start, end_time_unix_nano=start + rng.randrange(-10**6, 10**10))
                    if rng.random() < 0.3:
                        span.status.code = rng.choice((0, 1, 2, 2))  # type: ignore[assignment]
                    span.attributes.extend(_attributes(rng, span_keys, rng.randrange(0, 14)))
        out.append(request.SerializeToString())
    return out


def _cap(kvs: Any) -> None:
    for kv in kvs:
        which = kv.value.WhichOneof("value")
        kv.key = kv.key[:CAP]
        if which == "string_value":
            kv.value.string_value = kv.value.string_value[:CAP]
        elif which in ("array_value", "kvlist_value", "bytes_value") and kv.value.ByteSize() > CAP:
            kv.value.ClearField(which)
            kv.value.bytes_value = b"cut"


def capped(body: bytes) -> bytes:
    """The request with strings cut to CAP characters and large arrays, maps and bytes made small."""
    request = ExportTraceServiceRequest.FromString(body)
    for resource_spans in request.resource_spans:
        _cap(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                _cap(span.attributes)
                span.name = span.name[:CAP]
                if span.ByteSize() > 4 * CAP:
                    del span.events[:]
                    del span.links[:]
    return request.SerializeToString()


def prices() -> PriceTable:
    """The saved price table, as `PriceTable.load` would build it from that prices.json."""
    header, _ = _read()
    return table(header["prices"])


def table(doc: dict[str, Any]) -> PriceTable:
    models = {name: ModelPrice(*entry) for name, entry in doc["models"].items()}
    return PriceTable(models, doc["version"], ModelPrice(*doc["default"]))


def cases() -> list[tuple[str, bytes, list[str]]]:
    """(source, body, each record's `digest`) of the saved corpus."""
    header, chunks = _read()
    return [(source, chunks[2 * k], chunks[2 * k + 1].decode().split("\n") if chunks[2 * k + 1] else [])
            for k, source in enumerate(header["sources"])]


def as_json(record: Any) -> str:
    return json.dumps(list(record))


def digest(record: Any) -> str:
    """A record's fields exactly (JSON keeps 1 and 1.0, True and 1 apart), in 16 bytes: the records
    themselves would make the file five times the size."""
    return hashlib.blake2b(as_json(record).encode(), digest_size=16).hexdigest()


def _read() -> tuple[dict[str, Any], list[bytes]]:
    """The file: gzip of length-prefixed chunks, a JSON header, then each body and its records' lines."""
    data, chunks, at = gzip.decompress(CORPUS.read_bytes()), [], 0
    while at < len(data):
        size = int.from_bytes(data[at:at + 4], "big")
        chunks.append(data[at + 4:at + 4 + size])
        at += 4 + size
    return json.loads(chunks[0]), chunks[1:]


def _distinct_spans(bodies: list[bytes]) -> list[bytes]:
    """The requests with each span kept only the first time it is seen under its resource (ids and times
    aside); requests left without spans are dropped."""
    seen: set[bytes] = set()
    out = []
    for body in bodies:
        request, kept = ExportTraceServiceRequest.FromString(body), 0
        for resource_spans in request.resource_spans:
            resource = resource_spans.resource.SerializeToString()
            for scope_spans in resource_spans.scope_spans:
                keep = []
                for span in scope_spans.spans:
                    shape = Span()
                    shape.CopyFrom(span)
                    for field in ("trace_id", "span_id", "parent_span_id", "start_time_unix_nano",
                                  "end_time_unix_nano"):
                        shape.ClearField(field)
                    signature = resource + shape.SerializeToString()
                    if signature not in seen:
                        seen.add(signature)
                        keep.append(span)
                del scope_spans.spans[:]
                scope_spans.spans.extend(keep)
                kept += len(keep)
        if kept:
            out.append(request.SerializeToString())
    return out


def _first(body: bytes, spans: int) -> bytes:
    request = ExportTraceServiceRequest.FromString(body)
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            del scope_spans.spans[spans:]
    return request.SerializeToString()


def build(captured: Path) -> None:
    """Normalise every body with the normaliser as it is now and save bodies and records."""
    from spanwarden.bench.normalize_mix import mix
    from spanwarden.bench.soak_traffic import AgentTraffic

    shipped = PriceTable.load()
    doc_prices = {"version": shipped.version, "default": list(_fields(shipped.default)),
                  "models": {name: list(_fields(price)) for name, price in shipped._prices.items()}}
    normalizer = Normalizer(table(doc_prices))
    captured_bodies = [capped(p.read_bytes()) for p in sorted(captured.glob("*.bin"))]
    sources: list[tuple[str, bytes]] = [("tests", body) for body in _distinct_spans(captured_bodies)]
    sources += [("soak", AgentTraffic(f"agent-{k}", 3).body(50, None)) for k in range(4)]
    sources += [(f"bench:{family}", _first(capped(body), 6 if family == "huge" else 60))
                for family, bodies in mix(11).items() if family != "soak" for body in bodies]
    sources += [("generated", body) for body in generated(5, 200)]
    names, chunks = [], []
    for source, body in sources:
        records = normalizer.records(ExportTraceServiceRequest.FromString(body))
        names.append(source)
        chunks += [body, "\n".join(digest(r) for r in records).encode()]
    header = json.dumps({"prices": doc_prices, "sources": names}).encode()
    data = b"".join(len(chunk).to_bytes(4, "big") + chunk for chunk in [header, *chunks])
    CORPUS.parent.mkdir(exist_ok=True)
    CORPUS.write_bytes(gzip.compress(data, 9, mtime=0))
    print(f"{len(names)} requests, {sum(len(c.splitlines()) for c in chunks[1::2])} records -> {CORPUS}")


def _fields(price: ModelPrice) -> tuple[float, float, float, float]:
    return price.input, price.output, price.cached_input, price.cache_write


if __name__ == "__main__":
    build(Path(sys.argv[1]))
