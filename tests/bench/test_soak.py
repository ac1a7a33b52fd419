"""The soak benchmark, bounded for CI: a real `serve` process with its shipped defaults (audit fsync
`always`), many agents over loopback, a guarded agent killed over and over meanwhile. The contract: every
request acknowledged, every kill refused by the guard in time, the JSON keys; memory flat after warm-up
for a steady set of agents (end ≤ 1.1 × warm-up); under churn, new agents bounded by the cap and memory
flat all the same. (The long run's figures are in the notes.)"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from spanwarden.bench.soak import run
from spanwarden.cli import app

pytestmark = pytest.mark.slow
KEYS = {"spans_per_s", "p99_ingest_ms", "kill_p99_ms_under_load", "missed", "max_loop_stall_ms", "rss_warm_mb",
        "rss_end_mb", "dropped", "rss_mb_start", "rss_mb_end"}


# Records wait out the lateness bound in memory, so that buffer follows the throughput of the moment, which on
# a shared machine swings; a 1 s bound keeps it small, and what is measured is the agents' state.
SHORT_LATENESS = {"SPANWARDEN_MAX_LATENESS_S": "1"}


def test_the_cli_prints_its_contract() -> None:
    result = CliRunner().invoke(app, ["bench", "soak", "--json", "--seconds", "8", "--agents", "40",
                                      "--batch", "50", "--clients", "2"])
    assert result.exit_code == 0, result.output
    assert KEYS <= set(json.loads(result.output.strip().splitlines()[-1]))


def test_a_steady_fleet_is_served_every_kill_lands_and_memory_stays_flat() -> None:
    figures = run(agents=150, seconds=50, batch=50, clients=2, env=SHORT_LATENESS)
    assert figures["dropped"] == 0 and figures["missed"] == 0 and figures["kills"] > 5
    assert figures["spans_per_s"] > 0 and figures["requests"] > 150
    assert figures["rss_end_mb"] <= 1.1 * figures["rss_warm_mb"], figures


def test_churn_is_held_to_the_cap_and_memory_stays_flat() -> None:
    per_minute, seconds = 240, 40.0  # the steady 120 agents and the first churned names fit the first minute
    figures = run(agents=120, seconds=seconds, batch=50, clients=2, churn=40,
                  env={"SPANWARDEN_NEW_AGENTS_PER_MINUTE": str(per_minute), **SHORT_LATENESS})
    allowed = per_minute + per_minute * figures["seconds"] / 60 + 1  # the bucket, its refill, the kill victim
    assert figures["churned_agents"] > allowed  # the churn asked for more than the cap lets in
    assert figures["agents_known"] <= allowed and figures["new_agents_refused"] > 0, figures
    assert figures["dropped"] == 0 and figures["missed"] == 0
    # Bounded by the cap, not flat: its refill admits new agents after warm-up (each with its state), and
    # refused spans pass through the allocator. Unbounded churn (every name let in) would grow past this.
    assert figures["rss_end_mb"] <= 1.2 * figures["rss_warm_mb"], figures
