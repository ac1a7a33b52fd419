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


@pytest.mark.parametrize("model", ["us.anthropic.claude-sonnet-4-5-20250929-v1:0",
                                   "claude-sonnet-4-5-20250929-v1:0", "anthropic.claude-sonnet-4-5-20250929-v1:0",
                                   "claude-sonnet-4-5@20250929", "anthropic/claude-sonnet-4-5",
                                   "Claude-Sonnet-4-5-20250929"])
def test_bedrock_vertex_and_dated_ids_find_their_price(model):
    table = PriceTable.load()
    assert table.lookup(model) == table.lookup("claude-sonnet-4-5") is not None
    assert table.canonical_name(model) == "claude-sonnet-4-5"


def test_cache_writes_have_their_own_rate_and_reads_theirs():
    table = PriceTable.load()
    # 1500 input of which 400 read from the cache and 100 written to it: Anthropic's bill for the call.
    cost, priced = table.cost("claude-sonnet-4-5", 1500, 250, 400, 100)
    assert priced and cost == pytest.approx((1000 * 3.0 + 400 * 0.3 + 100 * 3.75 + 250 * 15.0) / 1e6)
    assert round(cost, 6) == 0.007245
    # Providers that bill no writes: the input rate.
    assert table.cost("gpt-4o", 1000, 0, 0, 1000)[0] == pytest.approx(table.cost("gpt-4o", 1000, 0, 0)[0])
    # Reads and writes beyond the input count: the input count was fresh input alone.
    assert table.cost("claude-sonnet-4-5", 300, 0, 400, 100)[0] == pytest.approx(
        (300 * 3.0 + 400 * 0.3 + 100 * 3.75) / 1e6)


def test_the_table_covers_embedding_models():
    table = PriceTable.load()
    for model in ("text-embedding-3-small", "text-embedding-ada-002", "gemini-embedding-001",
                  "amazon.titan-embed-text-v2:0"):
        assert table.lookup(model) is not None, model


def test_reported_costs_are_plausible_within_a_factor():
    assert PriceTable.plausible(0.007, 0.007245) and PriceTable.plausible(0.0036, 0.007245)  # batch: half
    assert not PriceTable.plausible(7.245, 0.007245) and not PriceTable.plausible(0.0000072, 0.007245)
    assert PriceTable.plausible(0.5, 0.0)  # nothing to compare with


def test_an_override_file_can_price_cache_writes(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"models": {"acme": {"input": 1.0, "output": 2.0, "cache_write": 5.0}}}))
    assert PriceTable.load(path).cost("acme", 1_000_000, 0, 0, 1_000_000)[0] == pytest.approx(5.0)
    path.write_text(json.dumps({"models": {"acme": {"input": 1.0, "output": 2.0, "cache_write": -1}}}))
    with pytest.raises(PriceTableError, match="models.acme: prices must be >= 0"):
        PriceTable.load(path)
