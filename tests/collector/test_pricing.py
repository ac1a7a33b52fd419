"""The versioned price table and its per-deployment override."""

from __future__ import annotations

import json

import pytest

from spanwarden.collector.pricing import PriceTable, PriceTableError


def test_shipped_table_covers_the_four_providers():
    table = PriceTable.load()
    for model in ("gpt-5", "gpt-4o-mini", "claude-sonnet-4-5", "claude-opus-4-1", "gemini-2.5-pro",
                  "mistral-large"):
        assert table.lookup(model) is not None, model


def test_lookup_by_exact_name_then_longest_prefix():
    table = PriceTable.load()
    assert table.lookup("gpt-4o-mini-2024-07-18") == table.lookup("gpt-4o-mini")
    assert table.lookup("gpt-4o-2024-08-06") == table.lookup("gpt-4o")
    assert table.lookup("openai/GPT-4o") == table.lookup("gpt-4o")
    assert table.lookup("gpt-4oops") is None  # a prefix must end at a dash


def test_cached_tokens_are_billed_at_the_cached_rate():
    table = PriceTable.load()
    full, _ = table.cost("claude-sonnet-4-5", 1_000_000, 0, 0)
    cached, _ = table.cost("claude-sonnet-4-5", 1_000_000, 0, 1_000_000)
    assert full == pytest.approx(3.0) and cached == pytest.approx(0.3)


def test_override_file_replaces_and_adds(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"version": "acme-1", "models": {
        "gpt-4o": {"input": 1.0, "output": 2.0}, "acme-llm": {"input": 0.5, "output": 0.5}}}))
    table = PriceTable.load(path)
    assert table.cost("gpt-4o", 1_000_000, 1_000_000, 0) == (pytest.approx(3.0), True)
    assert table.lookup("acme-llm") is not None and "acme-1" in table.version


@pytest.mark.parametrize("doc, message", [
    ("not json", "cannot read price file"),
    (json.dumps({"models": {"x": {"input": "free"}}}), "models.x: needs numeric"),
    (json.dumps({"models": {"x": {"input": -1, "output": 1}}}), "models.x: prices must be >= 0"),
    (json.dumps([1]), "expected an object with a 'models' mapping"),
])
def test_bad_override_files_name_the_problem(tmp_path, doc, message):
    path = tmp_path / "prices.json"
    path.write_text(doc)
    with pytest.raises(PriceTableError, match=message):
        PriceTable.load(path)
