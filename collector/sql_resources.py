"""The tables a SQL statement touches, read with a real SQL parser (sqlglot), for database spans that name
the statement (`db.query.text`, `db.statement`) but not the table (`db.collection.name`).

Statements are parsed once each (an LRU of recent ones: agents repeat the same few queries) and cut at
MAX_SQL characters first; what sqlglot cannot parse gives `db.query.summary`'s table or nothing, never an
error on the ingest path.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

log = logging.getLogger(__name__)

MAX_SQL = 16_384  # longer statements are parsed from their start: the tables come early in every dialect
MAX_CACHED = 4096
_SUMMARY_VERBS = frozenset({"select", "insert", "update", "delete", "merge", "upsert", "create", "drop", "alter",
                            "truncate", "replace", "call", "with", "into", "from"})

# db.system.name -> sqlglot dialect (names sqlglot reads as they are are left out)
_DIALECTS = {"postgresql": "postgres", "mssql": "tsql", "microsoft.sql_server": "tsql", "oracle.db": "oracle",
             "mariadb": "mysql", "cockroachdb": "postgres", "redshift": "redshift", "sqlite": "sqlite",
             "mysql": "mysql", "bigquery": "bigquery", "snowflake": "snowflake", "duckdb": "duckdb",
             "clickhouse": "clickhouse", "trino": "trino", "hive": "hive", "spark": "spark"}

_cache: OrderedDict[tuple[str, str], tuple[str, ...]] = OrderedDict()


def dialect_of(system: str) -> str:
    """sqlglot's dialect for a `db.system.name` ("" lets sqlglot read it as generic SQL)."""
    return _DIALECTS.get(system.lower(), "")
_missing_parser = False


def tables(sql: str, system: str = "") -> tuple[str, ...]:
    """The tables `sql` reads or writes, in first-mention order, as `schema.table` when qualified; CTE
    names are not tables. Empty when the statement names none or cannot be parsed."""
    key = (sql[:MAX_SQL], system)
    found = _cache.get(key)
    if found is not None:
        _cache.move_to_end(key)
        return found
    found = _parse(key[0], _DIALECTS.get(system.lower(), ""))
    _cache[key] = found
    if len(_cache) > MAX_CACHED:
        _cache.popitem(last=False)
    return found


def _parse(sql: str, dialect: str) -> tuple[str, ...]:
    global _missing_parser
    try:  # the server extra: imported on first use; the agent-side guard does without it
        import sqlglot
        from sqlglot import exp
        from sqlglot.errors import SqlglotError
    except ImportError:
        if not _missing_parser:
            _missing_parser = True
            log.warning("sqlglot is not installed: tables are read from db.collection.name and "
                        "db.query.summary only (pip install 'spanwarden[server]')")
        return ()

    try:
        statements = sqlglot.parse(sql, dialect=dialect or None)
    except (SqlglotError, ValueError, RecursionError) as exc:
        log.debug("cannot parse SQL for its tables: %s", exc)
        return ()
    found: list[tuple[int, int, str]] = []  # (statement, position in the text, name)
    for index, statement in enumerate(statements):
        if statement is None:
            continue
        ctes = {cte.alias_or_name.lower() for cte in statement.find_all(exp.CTE)}
        for table in statement.find_all(exp.Table):
            name = table.name
            if not name or (not table.db and name.lower() in ctes):
                continue
            position = table.this.meta.get("start", 0) if isinstance(table.this, exp.Expression) else 0
            found.append((index, position, f"{table.db}.{name}" if table.db else name))
    out: list[str] = []
    for _, _, name in sorted(found):
        if name not in out:
            out.append(name)
    return tuple(out)


def summary_table(summary: str) -> str:
    """The first table a `db.query.summary` names ("SELECT orders" -> "orders", "INSERT public.events")."""
    for word in summary.split():
        if word.lower() not in _SUMMARY_VERBS and not word.startswith("("):
            return word.strip(",;")
    return ""
