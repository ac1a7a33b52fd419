"""`spanwarden bench leases` prints its contract, and its figures are the lease guarantees themselves: a burst
gets the calls its budget affords, replies far larger than the estimate overspend by one call at most."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_bench_leases_prints_its_contract_and_the_leases_hold():
    done = subprocess.run([sys.executable, "-m", "spanwarden.cli", "bench", "leases", "--json", "--calls", "20"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"burst_calls_let_through", "burst_affordable", "overspend_calls_4k_replies",
            "calls_let_through_4k_replies", "overspend_calls_3m_replies",
            "lease_overhead_us_per_span", "guard_us_per_span"} <= set(result)
    assert result["burst_calls_let_through"] >= 0.9 * result["burst_affordable"]
    assert result["overspend_calls_4k_replies"] <= 1.0 and result["overspend_calls_3m_replies"] <= 1.0
