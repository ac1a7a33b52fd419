"""The one stable name for what a span touched (`db:<system>:<namespace>.<table>`, `http:<host>`, ...), from
whichever convention names it: an explicit `spanwarden.resource`, the database conventions (the table from
`db.collection.name`, else parsed from the statement, else `db.query.summary`), `mcp.resource.uri`, a
messaging destination, `file.path`, a URL or server address.

An LLM call's server or URL is its provider, never a data resource; neither is a known LLM API host on any
other span (an HTTP client span under the call, a framework's tool span that copies it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from spanwarden.collector import attributes as A
from spanwarden.collector import span_kind, sql_resources
from spanwarden.collector.span_record import LLM_OPERATIONS

MAX_TEXT = 256


def _key(names: str | tuple[str, ...]) -> str:
    return names if isinstance(names, str) else names[0]


K_RESOURCE, K_DB_SYSTEM, K_DB_COLLECTION = _key(A.RESOURCE), _key(A.DB_SYSTEM), _key(A.DB_COLLECTION)
K_DB_NAMESPACE, K_DB_QUERY, K_DB_SUMMARY = _key(A.DB_NAMESPACE), _key(A.DB_QUERY), A.DB_QUERY_SUMMARY
K_MCP_URI, K_DESTINATION, K_FILE = A.MCP_RESOURCE_URI, A.MESSAGING_DESTINATION, A.FILE_PATH
K_SERVER, K_URL = A.SERVER_ADDRESS, _key(A.URL_FULL)

# Hosts of LLM APIs: where a model is called, not data an agent reads.
PROVIDER_HOSTS = frozenset({
    "api.openai.com", "api.anthropic.com", "generativelanguage.googleapis.com", "api.mistral.ai",
    "api.cohere.com", "api.cohere.ai", "api.groq.com", "api.deepseek.com", "api.x.ai", "api.together.xyz",
    "api.fireworks.ai", "openrouter.ai", "api.perplexity.ai",
})
_PROVIDER_SUFFIXES = (".openai.azure.com", ".services.ai.azure.com", "-aiplatform.googleapis.com")


def is_provider_host(host: str) -> bool:
    h = host.lower()
    return (h in PROVIDER_HOSTS or h.endswith(_PROVIDER_SUFFIXES)
            or (h.startswith("bedrock-runtime.") and h.endswith(".amazonaws.com")))


def resource_of(attributes: Mapping[str, Any]) -> str:
    """The resource a span's attributes name, as its record will (the guard's view at span start)."""
    a: dict[str, Any] = {}
    ranks: dict[str, int] = {}
    for name, value in attributes.items():
        alias = A.SPAN_KEYS.get(name)
        if alias is not None and alias[1] < ranks.get(alias[0], 99):
            a[alias[0]], ranks[alias[0]] = value, alias[1]
    kind = span_kind.kind_of(str(a.get(A.OPERATION[0]) or ""), a.get(A.SPAN_KIND[0]))
    operation = span_kind.operation_of(a.get(A.OPERATION[0]), kind)
    tool = a.get(A.TOOL_NAME[0]) or kind == span_kind.TOOL
    llm_call = not tool and (kind in (span_kind.LLM, span_kind.EMBEDDING) or operation in LLM_OPERATIONS
                             or bool(a.get(A.MODEL[0])))
    return resource(a, [], llm_call)


def resource(a: dict[str, Any], flags: list[str], llm_call: bool = False) -> str:
    explicit = a.get(K_RESOURCE)
    if explicit:
        return _cut(str(explicit), flags)
    namespace = a.get(K_DB_NAMESPACE)
    system = a.get(K_DB_SYSTEM)
    table = a.get(K_DB_COLLECTION) or _table(a, str(system or ""))
    if table:
        name = f"{namespace}.{table}" if namespace else str(table)
        return _cut(f"db:{system or 'db'}:{name}", flags)
    uri = a.get(K_MCP_URI)
    if uri:
        return _cut(f"mcp:{uri}", flags)
    destination = a.get(K_DESTINATION)
    if destination:
        return _cut(f"queue:{destination}", flags)
    path = a.get(K_FILE)
    if path:
        return _cut(f"file:{path}", flags)
    if not llm_call:
        host = _host(a, flags)
        if host and not is_provider_host(host):
            return _cut(f"http:{host}", flags)
    if namespace:
        return _cut(f"db:{system or 'db'}:{namespace}", flags)
    return ""


def _table(a: dict[str, Any], system: str) -> str:
    query = a.get(K_DB_QUERY)
    if isinstance(query, str) and query:
        found = sql_resources.tables(query, system)
        if found:
            return found[0]
    summary = a.get(K_DB_SUMMARY)
    return sql_resources.summary_table(summary) if isinstance(summary, str) else ""


def _host(a: dict[str, Any], flags: list[str]) -> str:
    host = a.get(K_SERVER)
    if host:
        return str(host)
    url = a.get(K_URL)
    if isinstance(url, str) and url:
        try:
            return urlsplit(url).hostname or ""
        except ValueError:
            flags.append("bad_url")
    return ""


def _cut(text: str, flags: list[str]) -> str:
    if len(text) > MAX_TEXT:
        flags.append("truncated:resource")
        return text[:MAX_TEXT]
    return text
