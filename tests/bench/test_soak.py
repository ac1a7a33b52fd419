"""The soak benchmark, bounded for CI: a real `serve` process, many agents over loopback for a few seconds;
every request acknowledged and the JSON line's contract kept (the long run's figures are in the notes)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from spanwarden.cli import app

pytestmark = pytest.mark.slow


def test_a_short_soak_acknowledges_every_request_and_prints_its_contract() -> None:
    result = CliRunner().invoke(app, ["bench", "soak", "--json", "--seconds", "4", "--agents", "60",
                                      "--batch", "50", "--clients", "2"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output.strip().splitlines()[-1])
    assert {"spans_per_s", "p99_ingest_ms", "rss_mb_start", "rss_mb_end", "dropped"} <= set(figures)
    assert figures["dropped"] == 0 and figures["spans_per_s"] > 0 and figures["requests"] > 60
    assert 0 < figures["rss_mb_start"] <= figures["rss_mb_end"] * 1.5
