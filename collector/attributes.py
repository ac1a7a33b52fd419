"""The OpenTelemetry attribute names spanwarden reads, current and deprecated, in one place.

Agents arrive instrumented by whatever their framework ships, so each field accepts the names of every
convention in use: the OTel GenAI semantic conventions (`gen_ai.*`, still "Development" and renamed more
than once), OpenLLMetry/Traceloop (`gen_ai.*` plus `llm.*` and `traceloop.*`), OpenInference from Arize
(`llm.*`, `openinference.span.kind`, `tool.*`), Pydantic AI and Logfire (`operation.cost`), LangSmith's OTel
export (`langsmith.*`) and the MCP SDK (`mcp.*`). In each group the first name is canonical and a name
earlier in the group wins over a later one when a span carries several.
"""

from __future__ import annotations

# Resource: who the agent is.
SERVICE_NAME = "service.name"
SERVICE_VERSION = "service.version"
ENVIRONMENT = ("deployment.environment.name", "deployment.environment")
AGENT_ID = "gen_ai.agent.id"
AGENT_NAME = "gen_ai.agent.name"
AGENT_VERSION = "gen_ai.agent.version"
OWNER = ("spanwarden.owner", "enduser.id")
TEAM = "spanwarden.team"
EXPLICIT_AGENT = "spanwarden.agent"  # on the resource or a span: the agent, whatever else the span says
MULTI_AGENT = "spanwarden.multi_agent"  # resource: "true" when one service hosts several agents
INHERITED_AGENT = "spanwarden.agent_name"  # stamped in-process: the nearest agent ancestor's stable name
AGENT_ID_FROM = "spanwarden.agent_id_from"  # resource: "instrument" when instrument(agent_id=) set service.name

# GenAI spans (all still "Development" status: accept the older names too).
OPERATION = ("gen_ai.operation.name", "llm.request.type")
SPAN_KIND = ("openinference.span.kind", "traceloop.span.kind", "langsmith.span.kind")
PROVIDER = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
RESPONSE_MODEL = "gen_ai.response.model"
REQUEST_MODEL = "gen_ai.request.model"
MODEL = (RESPONSE_MODEL, REQUEST_MODEL, "llm.model_name", "llm.response.model_name", "llm.request.model_name",
         "embedding.model_name")
RESPONSE_ID = "gen_ai.response.id"
INPUT_TOKENS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt")
OUTPUT_TOKENS = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.token_count.completion")
TOTAL_TOKENS = ("gen_ai.usage.total_tokens", "llm.usage.total_tokens", "llm.token_count.total")  # fallback only
CACHED_TOKENS = ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens",
                 "llm.token_count.prompt_details.cache_read")
CACHE_WRITE_TOKENS = ("gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.cache_write.input_tokens",
                      "gen_ai.usage.cache_creation_input_tokens", "llm.token_count.prompt_details.cache_write")
REASONING_TOKENS = ("gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.reasoning_tokens",
                    "llm.token_count.completion_details.reasoning", "llm.usage.reasoning_tokens")
REPORTED_COST = ("spanwarden.cost_usd", "operation.cost", "llm.cost.total", "gen_ai.usage.cost")
TOOL_NAME = ("gen_ai.tool.name", "tool.name", "tool_call.function.name")
ENTITY_NAME = "traceloop.entity.name"  # the tool's name on a Traceloop tool span
TOOL_ARGUMENTS = ("gen_ai.tool.call.arguments", "tool_call.function.arguments")
ENTITY_INPUT = ("traceloop.entity.input", "input.value")  # a tool span's arguments (only on tool spans)
INPUT_MESSAGES = ("gen_ai.input.messages", "gen_ai.prompt")  # opt-in content; only ever hashed
CONVERSATION_ID = ("gen_ai.conversation.id", "session.id", "mcp.session.id",
                   "traceloop.association.properties.thread_id", "traceloop.association.properties.session_id",
                   "langsmith.metadata.thread_id", "langsmith.metadata.session_id")
SPAN_AGENT_NAME = (AGENT_NAME, "agent.name", "traceloop.association.properties.lc_agent_name",
                   "langsmith.metadata.lc_agent_name", "traceloop.workflow.name")
FINGERPRINT = "spanwarden.fingerprint"
ERROR_TYPE = "error.type"
MCP_METHOD = "mcp.method.name"

# The resource an agent touched, from the existing conventions.
RESOURCE = "spanwarden.resource"
DB_SYSTEM = ("db.system.name", "db.system")
DB_COLLECTION = ("db.collection.name", "db.sql.table")
DB_NAMESPACE = ("db.namespace", "db.name")
DB_QUERY = ("db.query.text", "db.statement")
DB_QUERY_SUMMARY = "db.query.summary"
DB_OPERATION = ("db.operation.name", "db.operation")
MCP_RESOURCE_URI = "mcp.resource.uri"
MESSAGING_DESTINATION = "messaging.destination.name"
FILE_PATH = "file.path"
SERVER_ADDRESS = "server.address"
URL_FULL = ("url.full", "http.url")
ROWS = ("db.response.returned_rows", "spanwarden.rows")  # rows returned, or changed by a write where reported

# What an operation does (collector/effects.py), and the approval it went out under (stamped by the guard).
EFFECT = "spanwarden.effect"
APPROVAL = "spanwarden.approval"
HTTP_METHOD = ("http.request.method", "http.method")
MESSAGING_OPERATION = ("messaging.operation.type", "messaging.operation")
URL_PATH = "url.path"
BYTES = ("spanwarden.bytes", "http.response.body.size")


# Attributes whose conventional type is numeric; every other one read is a string. Only a hint for the fast
# path: a value of another type is still read (and a bad one flagged).
NUMERIC = frozenset({*INPUT_TOKENS, *OUTPUT_TOKENS, *TOTAL_TOKENS, *CACHED_TOKENS, *CACHE_WRITE_TOKENS,
                     *REASONING_TOKENS, *REPORTED_COST, *ROWS, *BYTES})
DOUBLE = frozenset(REPORTED_COST)


def aliases(*groups: str | tuple[str, ...]) -> dict[str, tuple[str, int, str]]:
    """attribute name -> (canonical name, rank, expected AnyValue field): the first name of each group is
    canonical, and a lower rank (a newer name) wins when a span carries several names of one group."""
    out: dict[str, tuple[str, int, str]] = {}
    for group in groups:
        names = (group,) if isinstance(group, str) else group
        for rank, name in enumerate(names):
            if name in out:
                raise ValueError(f"attribute {name!r} is in two groups")
            kind = "double_value" if name in DOUBLE else "int_value" if name in NUMERIC else "string_value"
            out[name] = (names[0], rank, kind)
    return out


RESOURCE_KEYS = aliases(SERVICE_NAME, SERVICE_VERSION, ENVIRONMENT, AGENT_ID, AGENT_NAME, AGENT_VERSION, OWNER,
                        TEAM, EXPLICIT_AGENT, MULTI_AGENT, AGENT_ID_FROM)
SPAN_KEYS = aliases(
    EXPLICIT_AGENT, INHERITED_AGENT, AGENT_ID, SPAN_AGENT_NAME, OWNER, TEAM, OPERATION, SPAN_KIND, PROVIDER,
    MODEL, RESPONSE_ID, INPUT_TOKENS, OUTPUT_TOKENS, TOTAL_TOKENS, CACHED_TOKENS, CACHE_WRITE_TOKENS,
    REASONING_TOKENS, REPORTED_COST[0], REPORTED_COST[1:], TOOL_NAME, ENTITY_NAME, TOOL_ARGUMENTS, ENTITY_INPUT,
    INPUT_MESSAGES, CONVERSATION_ID, FINGERPRINT, ERROR_TYPE, MCP_METHOD, RESOURCE, DB_SYSTEM, DB_COLLECTION,
    DB_NAMESPACE, DB_QUERY, DB_QUERY_SUMMARY, MCP_RESOURCE_URI, MESSAGING_DESTINATION, FILE_PATH, SERVER_ADDRESS,
    URL_FULL, ROWS, BYTES, EFFECT, APPROVAL, HTTP_METHOD, MESSAGING_OPERATION, URL_PATH, DB_OPERATION,
)
# Read whole (hashed or parsed), never kept in a record: arguments, prompts and SQL can be long.
UNCUT = frozenset({TOOL_ARGUMENTS[0], ENTITY_INPUT[0], INPUT_MESSAGES[0], DB_QUERY[0]})
