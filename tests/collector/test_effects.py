"""What an operation does, from its span: SQL parsed by sqlglot (and the keyword fallback without it), HTTP
methods, messaging, and an explicit `spanwarden.effect`."""

from __future__ import annotations

import pytest

from spanwarden.collector import effects
from spanwarden.collector.effects import DESTRUCTIVE, READ, WRITE


@pytest.mark.parametrize(("sql", "kind", "summary"), [
    ("SELECT * FROM customers WHERE id = 42", READ, "SELECT FROM customers"),
    ("select c.name from crm.customers c join orders o on o.cid = c.id", READ,
     "SELECT FROM crm.customers, orders"),
    ("INSERT INTO orders (id, total) VALUES (1, 9.99)", WRITE, "INSERT INTO orders"),
    ("UPDATE orders SET total = 0 WHERE id = 7", WRITE, "UPDATE orders"),
    ("UPDATE orders SET total = 0", DESTRUCTIVE, "UPDATE orders without WHERE"),
    ("DELETE FROM customers WHERE id = 1", DESTRUCTIVE, "DELETE FROM customers"),
    ("DELETE FROM customers", DESTRUCTIVE, "DELETE FROM customers without WHERE"),
    ("DROP TABLE prod.orders", DESTRUCTIVE, "DROP TABLE prod.orders"),
    ("TRUNCATE TABLE audit_trail", DESTRUCTIVE, "TRUNCATE audit_trail"),
    ("ALTER TABLE customers DROP COLUMN email", DESTRUCTIVE, "ALTER customers … DROP"),
    ("ALTER TABLE customers ADD COLUMN tier TEXT", WRITE, "ALTER customers"),
    ("SELECT 1; DROP TABLE users", DESTRUCTIVE, "SELECT FROM ?; DROP TABLE users"),
    ("WITH gone AS (DELETE FROM sessions WHERE ts < now() RETURNING id) SELECT count(*) FROM gone", DESTRUCTIVE,
     "DELETE FROM sessions"),
])
def test_sql_effects(sql, kind, summary):
    found = effects.of_sql(sql, "postgresql")
    assert (found.kind, found.summary) == (kind, summary)
    assert "42" not in found.summary and "9.99" not in found.summary  # never a literal


def test_unparsable_sql_falls_back_to_its_keyword_erring_towards_destructive():
    assert effects.of_sql("DELETE FRUM customers WHERE").kind == DESTRUCTIVE
    assert effects.of_sql("frobnicate everything").kind == WRITE
    assert effects._by_keyword("select 1").kind == READ  # what the agent side does without sqlglot


@pytest.mark.parametrize(("attributes", "kind"), [
    ({"http.request.method": "GET", "server.address": "api.example.com"}, READ),
    ({"http.request.method": "POST", "server.address": "files.example.org"}, WRITE),
    ({"http.method": "DELETE", "url.full": "https://api.example.com/v1/users/7"}, DESTRUCTIVE),
    ({"messaging.operation.type": "send", "messaging.destination.name": "payouts"}, WRITE),
    ({"db.system.name": "sqlite", "db.query.text": "DELETE FROM t"}, DESTRUCTIVE),
    ({"db.statement": "SELECT 1", "spanwarden.effect": "destructive"}, DESTRUCTIVE),
    ({"gen_ai.operation.name": "chat"}, ""),
])
def test_span_effects(attributes, kind):
    assert effects.of_span(attributes).kind == kind
