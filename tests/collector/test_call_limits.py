"""What a client call states about its own cost, read from an OpenAI-style request body."""

from __future__ import annotations

from spanwarden.collector.call_limits import BYTES_PER_TOKEN, limits_of


def test_the_reply_bound_is_the_calls_own_max_tokens_times_its_choices():
    assert limits_of({"max_tokens": 500}).max_output_tokens == 500
    assert limits_of({"max_completion_tokens": 800, "max_tokens": 500}).max_output_tokens == 800  # the newer
    assert limits_of({"max_tokens": 500, "n": 3}).max_output_tokens == 1500
    assert limits_of({"messages": []}).max_output_tokens is None  # no bound stated
    assert limits_of({"max_tokens": True}).max_output_tokens is None  # not a number


def test_the_prompt_is_sized_from_its_messages():
    short = limits_of({"messages": [{"role": "user", "content": "hi"}]}).prompt_tokens
    long = limits_of({"messages": [{"role": "user", "content": "word " * 3000}]}).prompt_tokens
    assert short is not None and long is not None and long >= 15_000 // BYTES_PER_TOKEN > short
    assert limits_of({"max_tokens": 5}).prompt_tokens is None  # nothing to size
