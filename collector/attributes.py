"""The OpenTelemetry attribute names spanwarden reads, current and deprecated, in one place."""

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

# GenAI spans (all still "Development" status: accept the older names too).
OPERATION = "gen_ai.operation.name"
PROVIDER = ("gen_ai.provider.name", "gen_ai.system")
RESPONSE_MODEL = "gen_ai.response.model"
REQUEST_MODEL = "gen_ai.request.model"
INPUT_TOKENS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
OUTPUT_TOKENS = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")
CACHED_TOKENS = ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens")
REPORTED_COST = ("spanwarden.cost_usd", "gen_ai.usage.cost")
TOOL_NAME = "gen_ai.tool.name"
TOOL_ARGUMENTS = "gen_ai.tool.call.arguments"
INPUT_MESSAGES = ("gen_ai.input.messages", "gen_ai.prompt")  # opt-in content; only ever hashed
CONVERSATION_ID = "gen_ai.conversation.id"
FINGERPRINT = "spanwarden.fingerprint"
ERROR_TYPE = "error.type"

# The resource an agent touched, from the existing conventions.
RESOURCE = "spanwarden.resource"
DB_SYSTEM = ("db.system.name", "db.system")
DB_COLLECTION = ("db.collection.name", "db.sql.table")
DB_NAMESPACE = ("db.namespace", "db.name")
MESSAGING_DESTINATION = "messaging.destination.name"
FILE_PATH = "file.path"
SERVER_ADDRESS = "server.address"
URL_FULL = ("url.full", "http.url")
ROWS = ("db.response.returned_rows", "spanwarden.rows")
BYTES = ("spanwarden.bytes", "http.response.body.size")


# Attributes whose conventional type is numeric; every other one read is a string. Only a hint for the fast
# path: a value of another type is still read (and a bad one flagged).
NUMERIC = frozenset({*INPUT_TOKENS, *OUTPUT_TOKENS, *CACHED_TOKENS, *REPORTED_COST, *ROWS, *BYTES})
DOUBLE = frozenset(REPORTED_COST)


def aliases(*groups: str | tuple[str, ...]) -> dict[str, tuple[str, int, str]]:
    """attribute name -> (canonical name, rank, expected AnyValue field): the first name of each group is
    canonical, and a lower rank (a newer name) wins when a span carries several names of one group."""
    out: dict[str, tuple[str, int, str]] = {}
    for group in groups:
        names = (group,) if isinstance(group, str) else group
        for rank, name in enumerate(names):
            kind = "double_value" if name in DOUBLE else "int_value" if name in NUMERIC else "string_value"
            out[name] = (names[0], rank, kind)
    return out


RESOURCE_KEYS = aliases(SERVICE_NAME, SERVICE_VERSION, ENVIRONMENT, AGENT_ID, AGENT_NAME, AGENT_VERSION, OWNER,
                        TEAM)
SPAN_KEYS = aliases(
    AGENT_ID, AGENT_NAME, OWNER, TEAM, OPERATION, PROVIDER, RESPONSE_MODEL, REQUEST_MODEL, INPUT_TOKENS,
    OUTPUT_TOKENS, CACHED_TOKENS, REPORTED_COST, TOOL_NAME, TOOL_ARGUMENTS, INPUT_MESSAGES, CONVERSATION_ID,
    FINGERPRINT,
    ERROR_TYPE, RESOURCE, DB_SYSTEM, DB_COLLECTION, DB_NAMESPACE, MESSAGING_DESTINATION, FILE_PATH,
    SERVER_ADDRESS, URL_FULL, ROWS, BYTES,
)
UNCUT = frozenset({TOOL_ARGUMENTS, INPUT_MESSAGES[0]})  # read whole (hashed), never kept in a record
