"""The command line: bench JSON contract and audit verify exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

from spanwarden.enforcers.audit_log import AgentRef, AuditLog


def spanwarden(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spanwarden.cli", *args], capture_output=True, text=True,
                          timeout=120)


def test_bench_ingest_prints_its_json_line_last():
    done = spanwarden("bench", "ingest", "--json", "--seconds", "0.2", "--batch", "64")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"spans_per_s", "batch"} <= set(result) and result["batch"] == 64 and result["spans_per_s"] > 0


def test_audit_verify_exit_codes(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, fsync="never")
    for i in range(3):
        log.append("decision", AgentRef("a"), "policy:x", f"r{i}", float(i))
    log.close()
    ok = spanwarden("audit", "verify", str(path), "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["entries"] == 3
    path.write_text(path.read_text().replace('"r1"', '"r9"'))
    bad = spanwarden("audit", "verify", str(path))
    assert bad.returncode == 1 and "TAMPERED" in bad.stdout and "entry 2" in bad.stdout
    missing = spanwarden("audit", "verify", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 2


def test_bad_settings_name_the_variable(tmp_path):
    done = subprocess.run([sys.executable, "-m", "spanwarden.cli", "serve"], capture_output=True, text=True,
                          timeout=60, env={"SPANWARDEN_PORT": "not-a-port", "PATH": "/usr/bin:/bin",
                                           "SPANWARDEN_STATE_DIR": str(tmp_path)})
    assert done.returncode == 2 and "SPANWARDEN_PORT" in done.stderr


def test_bench_detectors_and_eval_print_their_contracts():
    done = spanwarden("bench", "detectors", "--json", "--agents", "5", "--per-agent", "50")
    assert done.returncode == 0, done.stderr
    assert {"records_per_s", "bytes_per_agent"} <= set(json.loads(done.stdout.strip().splitlines()[-1]))
    done = spanwarden("eval", "--json", "--agents", "24", "--days", "2", "--incidents-per-kind", "1")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"per_detector", "incidents", "detected", "false_halts_per_agent_day", "runaway_usd_after_onset",
            "runaway_s_to_halt"} <= set(result)
    assert {"precision", "recall", "median_s_to_detect", "p95_s_to_detect"} <= set(
        result["per_detector"]["cost_velocity"])


def test_policy_check(tmp_path):
    assert spanwarden("policy", "check").returncode == 0
    bad = tmp_path / "p.yaml"
    bad.write_text("version: 1\nescalation: {findings: -3}\n")
    done = spanwarden("policy", "check", str(bad))
    assert done.returncode == 1 and "line 2" in done.stdout and "escalation.findings" in done.stdout


def test_guard_and_killswitch_benches_print_their_contracts():
    done = spanwarden("bench", "guard", "--json", "--spans", "300")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"overhead_us_per_span", "baseline_us_per_span"} <= set(result)
    done = spanwarden("bench", "killswitch", "--json", "--trials", "3")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"p50_ms", "p99_ms"} <= set(result) and 0 < result["p50_ms"] <= result["p99_ms"] < 5000
