"""`spanwarden bench`: benchmarks that print figures, the last line one JSON object."""

from __future__ import annotations

import json
from typing import Any

import typer

from spanwarden.build_info import compiled

app = typer.Typer(help="Benchmarks; each prints a JSON object as its last line with --json.",
                  no_args_is_help=True)


def _emit(as_json: bool, human: str, figures: dict[str, Any]) -> None:
    """The human line (unless --json), then the contract's JSON line, always last; `compiled`: whether the
    hot path ran compiled (a wheel's mypyc extensions) or as Python source (an editable install)."""
    if not as_json:
        typer.echo(human + ("" if compiled() else " [hot path not compiled: Python source]"))
    typer.echo(json.dumps({**figures, "compiled": compiled()}))


@app.command("ingest")
def ingest(
    as_json: bool = typer.Option(False, "--json", help="print only the JSON line"),
    batch: int = typer.Option(512, min=1, max=100_000, help="spans per OTLP request"),
    seconds: float = typer.Option(3.0, min=0.1, max=120, help="how long to measure"),
) -> None:
    """Decode + normalise OTLP/protobuf batches of GenAI spans made by the real OTLP exporter, one core."""
    from spanwarden.bench.ingest import run

    result = run(batch, seconds)
    _emit(as_json, f"ingest: {result['spans_per_s']:,.0f} spans/s in batches of {batch} (one core)", result)


@app.command("normalize")
def normalize(
    as_json: bool = typer.Option(False, "--json", help="print only the JSON line"),
    seconds: float = typer.Option(3.0, min=0.1, max=120, help="CPU seconds of normalising to measure"),
) -> None:
    """`Normalizer.records` alone (decoded OTLP request -> records) over a fixed mix of instrumentations'
    spans, huge and malformed ones: CPU us per span, overall and by family, one core."""
    from spanwarden.bench.normalize import run

    result = run(seconds)
    _emit(as_json, f"normalize: {result['cpu_us_per_span']} us of CPU per span "
                   f"({result['spans_per_s']:,.0f} spans/s, one core)", result)


@app.command("agent-import")
def agent_import(
    as_json: bool = typer.Option(False, "--json", help="print only the JSON line"),
    repeats: int = typer.Option(5, min=1, max=50, help="fresh interpreters to take the median of"),
) -> None:
    """The agent-side import (`import spanwarden`, `instrument`) in a fresh interpreter: time, modules loaded,
    and any heavy server-side module among them (there should be none)."""
    from spanwarden.bench.agent_import import run

    result = run(repeats)
    heavy = ", ".join(result["heavy_modules"]) or "none"
    _emit(as_json, f"agent import: {result['import_ms']:.0f} ms, {result['modules']} modules, heavy: {heavy}",
          result)


@app.command("detectors")
def detectors(
    as_json: bool = typer.Option(False, "--json", help="print only the JSON line"),
    agents: int = typer.Option(5000, min=1, max=100_000),
    per_agent: int = typer.Option(40, min=10, max=100_000),
) -> None:
    """Records/s through `Pipeline.process` (every detector, the ladder, the audit log with fsync `always`,
    grouped per chunk as served) on one core, and again with the serve's lateness bound and judge limit
    (served_bounds_ keys);
    beside it the bare detectors and the memory held per agent."""
    from spanwarden.bench.detectors import run, run_pipeline, run_served_bounds

    served = run_pipeline(agents, per_agent)
    held = run_served_bounds(agents, per_agent)  # the serve's lateness bound and judge limit
    bare = run(agents, per_agent)
    result = {"records_per_s": served["records_per_s"], "records_per_cpu_s": served["records_per_cpu_s"],
              "agents": served["agents"],
              "audit_entries": served["audit_entries"], "bare_detectors_records_per_s": bare["records_per_s"],
              "bytes_per_agent": bare["bytes_per_agent"],
              "served_bounds_records_per_cpu_s": held["records_per_cpu_s"],
              "served_bounds_records_per_s": held["records_per_s"]}
    _emit(as_json, f"detectors: {result['records_per_s']:,.0f} records/s through the pipeline at {agents} agents "
                   f"(bare detectors {bare['records_per_s']:,.0f}/s); {bare['bytes_per_agent']:,.0f} bytes in "
                   f"memory per agent ({bare['state_json_bytes_per_agent']:,.0f} as JSON state)", result)


@app.command("guard")
def guard(as_json: bool = typer.Option(False, "--json", help="print only the JSON line"),
          spans: int = typer.Option(20_000, min=100, max=1_000_000)) -> None:
    """The guard's added cost per LLM/tool span against the same SDK pipeline without it, one run."""
    from spanwarden.bench.guard import overhead

    result = overhead(spans)
    _emit(as_json, f"guard: +{result['overhead_us_per_span']} us per span over "
                   f"{result['baseline_us_per_span']} us", result)


@app.command("killswitch")
def killswitch(as_json: bool = typer.Option(False, "--json", help="print only the JSON line"),
               trials: int = typer.Option(50, min=1, max=1000)) -> None:
    """From `kill` to the agent's next call being refused, over real HTTP on loopback."""
    from spanwarden.bench.guard import killswitch as measure

    result = measure(trials)
    _emit(as_json, f"killswitch: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms over {result['trials']} "
                   f"kills ({result['missed']} not refused within 5 s)",
          {k: result[k] for k in ("p50_ms", "p99_ms")})


@app.command("leases")
def leases(as_json: bool = typer.Option(False, "--json", help="print only the JSON line"),
           calls: int = typer.Option(50, min=10, max=500)) -> None:
    """Spend leases on loopback: a burst's calls let through, overspend with replies far larger than the
    estimate (in calls of that size), and what a lease adds per LLM span."""
    from spanwarden.bench.leases import leases as measure
    from spanwarden.bench.leases import overhead

    result = {**measure(calls), **overhead()}
    _emit(as_json, f"leases: burst {result['burst_calls_let_through']} of {result['burst_affordable']:g} "
                   f"affordable calls; overspend {result['overspend_calls_4k_replies']} calls with 4k-token "
                   f"replies, {result['overspend_calls_3m_replies']} with 3M; "
                   f"+{result['lease_overhead_us_per_span']} us per span", result)


@app.command("pipeline")
def pipeline(
    as_json: bool = typer.Option(False, "--json", help="print only the JSON line"),
    bootstrap: str = typer.Option(None, help="a Kafka to use (it gets spanwarden's topics: use a test cluster); "
                                  "default: start a local Tansu broker"),
    agents: int = typer.Option(64, min=1, max=10_000),
    spans: int = typer.Option(200_000, min=1000, max=5_000_000, help="spans in the backlog"),
    batch: int = typer.Option(500, min=1, max=5000, help="spans per message"),
    paced_seconds: float = typer.Option(10.0, min=1, max=120, help="how long to send at half load"),
    partitions: int = typer.Option(8, min=1, max=256),
) -> None:
    """Spans through a real broker and one `spanwarden worker` process to decisions, beside a plain aiokafka
    consume+decode loop on the same broker; p99 latency at half the measured maximum."""
    from spanwarden.bench.pipeline import run

    result = run(bootstrap, agents, spans, batch, paced_seconds, partitions)
    _emit(as_json, f"pipeline: {result['spans_per_s']:,.0f} spans/s through one worker "
                   f"(raw consume+decode {result['raw_consume_spans_per_s']:,.0f}/s); p99 span→decision "
                   f"{result['p99_span_to_decision_ms']:.0f} ms at half load", result)


@app.command("recovery")
def recovery(
    as_json: bool = typer.Option(False, "--json", help="print only the JSON line"),
    bootstrap: str = typer.Option(None, help="a Kafka to use (test cluster); default: a local Tansu broker"),
    agents: int = typer.Option(10_000, min=1, max=1_000_000, help="agent states in the changelog"),
    partitions: int = typer.Option(8, min=1, max=256),
) -> None:
    """A `spanwarden worker` restarted over a changelog of agent states: recovery with the memory store
    (the whole changelog) and with RocksDB (the tail only)."""
    from spanwarden.bench.recovery import run

    result = run(bootstrap, agents, partitions)
    _emit(as_json, f"recovery: {result['recovery_s']:.2f} s with RocksDB, {result['memory_recovery_s']:.2f} s "
                   f"in memory, {agents} agents ({result['changelog_mb']} MB of state)", result)


@app.command("soak")
def soak(
    as_json: bool = typer.Option(False, "--json", help="print only the JSON line"),
    agents: int = typer.Option(500, min=1, max=100_000),
    seconds: float = typer.Option(30.0, min=1, max=3600, help="how long to drive it (bounded)"),
    batch: int = typer.Option(100, min=1, max=10_000, help="spans per OTLP request"),
    clients: int = typer.Option(4, min=1, max=64, help="concurrent HTTP clients"),
    churn: float = typer.Option(0.0, min=0, max=10_000, help="new agent names per second on top"),
) -> None:
    """A real `spanwarden serve` (shipped defaults: audit fsync `always`) on loopback fed by many agents for a
    bounded time while a guarded agent is killed over and over: throughput, ingest latency, kill latency
    under load, the longest event-loop stall, memory after warm-up and at the end, requests not
    acknowledged."""
    from spanwarden.bench.soak import run

    result = run(agents, seconds, batch, clients, churn=churn)
    _emit(as_json, f"soak: {result['spans_per_s']:,.0f} spans/s from {agents} agents for {result['seconds']} s; "
                   f"p99 ingest {result['p99_ingest_ms']} ms; kill p99 {result['kill_p99_ms_under_load']} ms "
                   f"({result['missed']} missed of {result['kills'] + result['missed']}); loop stall max "
                   f"{result['max_loop_stall_ms']} ms; RSS {result['rss_warm_mb']} → {result['rss_end_mb']} MB; "
                   f"{result['dropped']} dropped", result)
