"""What an operation does, read from its span: a read, a write, or something destructive — whatever the tool
is called. The base of holding destructive operations by their effect and of listing writes for rollback.

- SQL (`db.query.text`, `db.statement`), parsed with sqlglot: SELECT reads; INSERT, MERGE, UPDATE with a WHERE
  clause, CREATE and ALTER write; DELETE, DROP, TRUNCATE, ALTER … DROP and an UPDATE without WHERE are
  destructive. A script of several statements takes its worst. Without sqlglot (the agent-side install), or
  for what it cannot parse, the statement's leading keyword decides, erring towards destructive.
- Without the statement (it is opt-in in the current database conventions), `db.query.summary` or
  `db.operation.name` (`DELETE customers`, `deleteMany`, `FLUSHALL`): its verb decides — without the WHERE
  clause an UPDATE counts as a write, a DELETE as destructive.
- HTTP (`http.request.method`, older `http.method`): GET, HEAD, OPTIONS read; POST, PUT, PATCH write; DELETE
  is destructive.
- Messaging (`messaging.operation.type` send/publish/create, older `messaging.operation`): a write.
- Files (`file.path` on a span whose name or tool says what it does): write_/save_/upload_… write,
  delete_/remove_/unlink_… destructive.
- `spanwarden.effect` (read | write | destructive), set by the agent, wins.

The summary names the verb and the tables, never a literal, so it can go into an approval request.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

READ, WRITE, DESTRUCTIVE = "read", "write", "destructive"
_RANK = {"": 0, READ: 1, WRITE: 2, DESTRUCTIVE: 3}
_SQL_KEYS = ("db.query.text", "db.statement")
_HTTP_KEYS = ("http.request.method", "http.method")
_MESSAGING_KEYS = ("messaging.operation.type", "messaging.operation")
_DB_OPERATION_KEYS = ("db.query.summary", "db.operation.name", "db.operation")
_ANY_KEY = frozenset({"spanwarden.effect", *_SQL_KEYS, *_HTTP_KEYS, *_MESSAGING_KEYS, *_DB_OPERATION_KEYS,
                      "file.path"})
_MAX_SQL = 16_384
_MAX_CACHED = 4096
_cache: OrderedDict[str, Effect] = OrderedDict()

# The leading keyword, when the statement cannot be parsed.
_KEYWORDS = {"select": READ, "with": READ, "show": READ, "explain": READ, "describe": READ, "pragma": READ,
             "insert": WRITE, "merge": WRITE, "upsert": WRITE, "replace": WRITE, "create": WRITE, "copy": WRITE,
             "update": DESTRUCTIVE, "alter": DESTRUCTIVE, "delete": DESTRUCTIVE, "drop": DESTRUCTIVE,
             "truncate": DESTRUCTIVE, "grant": DESTRUCTIVE, "revoke": DESTRUCTIVE}


@dataclass(frozen=True)
class Effect:
    kind: str  # read | write | destructive | "" (not known)
    summary: str = ""  # e.g. "DELETE FROM customers", "UPDATE orders without WHERE", "POST api.example.com"
    source: str = ""  # sql | http | messaging | file | explicit
    targets: tuple[str, ...] = ()  # what it acts on: the statement's tables, the HTTP host, the queue, the file

    def __bool__(self) -> bool:
        return bool(self.kind)


NONE = Effect("")


def worst(a: str, b: str) -> str:
    return a if _RANK.get(a, 0) >= _RANK.get(b, 0) else b


def of_span(attributes: Mapping[str, Any], name: str = "") -> Effect:
    """The effect of the operation the span's attributes (and its name, for files) describe (NONE when they
    say nothing)."""
    if _ANY_KEY.isdisjoint(attributes):  # most spans (LLM calls, agents, chains): one pass over their keys
        return NONE
    explicit = str(attributes.get("spanwarden.effect", "")).strip().lower()
    if explicit in _RANK and explicit:
        return Effect(explicit, f"declared {explicit}", "explicit")
    for key in _SQL_KEYS:
        sql = attributes.get(key)
        if isinstance(sql, str) and sql.strip():
            return of_sql(sql, str(attributes.get("db.system.name") or attributes.get("db.system") or ""))
    for key in _DB_OPERATION_KEYS:
        operation = attributes.get(key)
        if isinstance(operation, str) and operation.strip():
            return of_db_operation(operation)
    for key in _HTTP_KEYS:
        method = attributes.get(key)
        if isinstance(method, str) and method:
            return of_http(method, *http_target(attributes))
    for key in _MESSAGING_KEYS:
        operation = str(attributes.get(key, "")).lower()
        destination = str(attributes.get("messaging.destination.name", "?"))
        if operation in ("send", "publish", "create"):
            return Effect(WRITE, f"{operation} to {destination}", "messaging", (destination,))
        if operation in ("receive", "process"):
            return Effect(READ, f"{operation} from {destination}", "messaging", (destination,))
    path = attributes.get("file.path")
    if isinstance(path, str) and path:
        return of_file(str(attributes.get("gen_ai.tool.name") or name), path)
    return NONE


# A database operation's verb (SQL keywords, MongoDB, Redis, Elasticsearch, DynamoDB ...), by its prefix.
_DB_VERBS = (("delete", DESTRUCTIVE), ("drop", DESTRUCTIVE), ("truncate", DESTRUCTIVE), ("remove", DESTRUCTIVE),
             ("del", DESTRUCTIVE), ("flush", DESTRUCTIVE), ("unlink", DESTRUCTIVE), ("expire", DESTRUCTIVE),
             ("alter", WRITE), ("insert", WRITE), ("update", WRITE), ("replace", WRITE), ("merge", WRITE),
             ("upsert", WRITE), ("create", WRITE), ("set", WRITE), ("put", WRITE), ("write", WRITE),
             ("bulk", WRITE), ("index", WRITE), ("copy", WRITE), ("hset", WRITE), ("lpush", WRITE),
             ("rpush", WRITE), ("incr", WRITE), ("select", READ), ("find", READ), ("get", READ), ("read", READ),
             ("count", READ), ("aggregate", READ), ("scan", READ), ("query", READ), ("search", READ),
             ("show", READ), ("with", READ), ("describe", READ), ("explain", READ), ("mget", READ))


def of_db_operation(text: str) -> Effect:
    """From `db.query.summary` ("DELETE customers") or `db.operation.name` ("deleteMany"): low cardinality,
    literal-free by the conventions; the words after the verb are its collections."""
    words = text.split()
    verb = words[0].lower() if words else ""
    kind = next((k for prefix, k in _DB_VERBS if verb.startswith(prefix)), WRITE if verb else "")
    return Effect(kind, text.strip()[:200], "db", tuple(words[1:9]))


def http_target(attributes: Mapping[str, Any]) -> tuple[str, str]:
    """(host, path) of an HTTP span; never the query string, where secrets and literals live."""
    host, path = str(attributes.get("server.address") or ""), str(attributes.get("url.path") or "")
    url = attributes.get("url.full") or attributes.get("http.url")
    if isinstance(url, str) and url and not (host and path):
        try:
            parts = urlsplit(url)
            host, path = host or (parts.hostname or ""), path or parts.path
        except ValueError:
            pass
    return host, path


def of_http(method: str, host: str = "", path: str = "") -> Effect:
    verb = method.upper()
    kind = {"GET": READ, "HEAD": READ, "OPTIONS": READ, "POST": WRITE, "PUT": WRITE, "PATCH": WRITE,
            "DELETE": DESTRUCTIVE}.get(verb, WRITE)  # an unknown method could change anything
    return Effect(kind, f"{verb} {host}{path[:200]}".strip(), "http", (host,) if host else ())


_FILE_VERBS = {"write": WRITE, "save": WRITE, "create": WRITE, "append": WRITE, "upload": WRITE, "put": WRITE,
               "edit": WRITE, "move": WRITE, "rename": WRITE, "delete": DESTRUCTIVE, "remove": DESTRUCTIVE,
               "unlink": DESTRUCTIVE, "rm": DESTRUCTIVE, "truncate": DESTRUCTIVE, "read": READ, "open": READ,
               "list": READ, "get": READ, "stat": READ}


def of_file(operation: str, path: str) -> Effect:
    """A file operation named by its span or tool (`write_file`, `delete_file`, `fs.unlink`, ...)."""
    words = [w for w in operation.lower().replace(".", "_").replace(" ", "_").split("_") if w]
    kind = next((_FILE_VERBS[w] for w in words if w in _FILE_VERBS), "")
    if not kind:
        return NONE
    verb = {READ: "read", WRITE: "write", DESTRUCTIVE: "delete"}[kind]
    return Effect(kind, f"{verb} file {path[:200]}", "file", (path,))


def of_sql(sql: str, system: str = "") -> Effect:
    """The worst effect among the statements of `sql` (cached: agents repeat their queries)."""
    key = f"{system}\x00{sql[:_MAX_SQL]}"
    found = _cache.get(key)
    if found is not None:
        _cache.move_to_end(key)
        return found
    found = _parsed(sql[:_MAX_SQL], system) or _by_keyword(sql)
    _cache[key] = found
    if len(_cache) > _MAX_CACHED:
        _cache.popitem(last=False)
    return found


def _by_keyword(sql: str) -> Effect:
    words = sql.strip().lstrip("(").split(None, 1)
    verb = words[0].lower().rstrip(";") if words else ""
    summary = f"{verb.upper()} (not parsed)" if verb else ""
    return Effect(_KEYWORDS.get(verb, WRITE if verb else ""), summary, "sql")


def _parsed(sql: str, system: str) -> Effect | None:
    try:
        import sqlglot
        from sqlglot import exp
        from sqlglot.errors import SqlglotError
    except ImportError:  # the agent-side install: the keyword decides
        return None
    from spanwarden.collector.sql_resources import dialect_of

    try:
        statements = [s for s in sqlglot.parse(sql, dialect=dialect_of(system) or None) if s is not None]
    except (SqlglotError, ValueError, RecursionError):
        return None
    if not statements:
        return None
    kind, summaries = "", []
    for statement in statements:
        one, summary = _statement(statement, exp)
        if not one:
            return None  # something it only half understands (a Command): the keyword decides
        kind = worst(kind, one)
        summaries.append(summary)
    return Effect(kind, "; ".join(summaries)[:500], "sql", tuple(dict.fromkeys(t for s in statements
                                                                         for t in _table_names(s, exp))))


def _table_names(statement: Any, exp: Any) -> list[str]:
    names: list[str] = []
    ctes = {cte.alias for cte in statement.find_all(exp.CTE)}  # a CTE's name is not a table
    for table in statement.find_all(exp.Table):
        name = f"{table.db}.{table.name}" if table.db else table.name
        if name and name not in names and (table.db or name not in ctes):
            names.append(name)
    return names


def _tables(statement: Any, exp: Any) -> str:
    return ", ".join(_table_names(statement, exp)) or "?"


def _statement(statement: Any, exp: Any) -> tuple[str, str]:
    tables = _tables(statement, exp)
    if isinstance(statement, exp.Delete):
        where = "" if statement.args.get("where") else " without WHERE"
        return DESTRUCTIVE, f"DELETE FROM {tables}{where}"
    if isinstance(statement, exp.Update):
        if statement.args.get("where"):
            return WRITE, f"UPDATE {tables}"
        return DESTRUCTIVE, f"UPDATE {tables} without WHERE"
    if isinstance(statement, exp.Drop):
        return DESTRUCTIVE, f"DROP {statement.args.get('kind') or ''} {tables}".replace("  ", " ")
    if isinstance(statement, exp.TruncateTable):
        return DESTRUCTIVE, f"TRUNCATE {tables}"
    if isinstance(statement, exp.Alter):
        actions = statement.args.get("actions") or []
        if any(isinstance(a, exp.Drop) or type(a).__name__.lower().startswith("drop") for a in actions):
            return DESTRUCTIVE, f"ALTER {tables} … DROP"
        return WRITE, f"ALTER {tables}"
    if isinstance(statement, exp.Insert | exp.Merge):
        return WRITE, f"{type(statement).__name__.upper()} INTO {tables}"
    if isinstance(statement, exp.Create):
        return WRITE, f"CREATE {statement.args.get('kind') or ''} {tables}".replace("  ", " ")
    if isinstance(statement, exp.Query):  # SELECT, UNION, ...: a data-modifying CTE inside counts
        inner = [_statement(node, exp) for node in statement.find_all(exp.Delete, exp.Update, exp.Insert,
                                                                       exp.Merge) if node is not statement]
        if inner:
            kind = ""
            for one, _ in inner:
                kind = worst(kind, one)
            return kind, "; ".join(summary for _, summary in inner)
        return READ, f"SELECT FROM {tables}"
    return "", ""
