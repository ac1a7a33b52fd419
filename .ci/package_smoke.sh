#!/usr/bin/env bash
# The package as a stranger gets it: build the wheel and sdist, check their metadata, install the wheel (not
# editable) into fresh venvs outside the checkout, and use it there. Called by .ci/run after `make test`.
#   bash .ci/package_smoke.sh [PYTHON]
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
PY="${1:-$REPO/.venv/bin/python}"
WORK="$(mktemp -d /tmp/spanwarden-smoke.XXXXXX)"
SERVE_PID=""
cleanup() { [ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
say() { echo "package smoke: $*"; }

say "building wheel and sdist (the wheel from the sdist, its hot path compiled with mypyc: SPANWARDEN_COMPILE=1)"
SPANWARDEN_COMPILE=1 "$PY" -m build --outdir "$WORK/dist" "$REPO" > "$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log"; exit 1; }
"$PY" -m twine check --strict "$WORK"/dist/*
WHEEL="$(ls "$WORK"/dist/*.whl)"
say "wheel $(basename "$WHEEL"): $(du -k "$WHEEL" | cut -f1) KiB, $(unzip -Z1 "$WHEEL" | wc -l) files"
# Every module of the source folders is in the wheel.
unzip -Z1 "$WHEEL" > "$WORK/wheel-files.txt"
for folder in spanwarden collector detectors enforcers dashboards; do
  prefix="spanwarden/"; [ "$folder" != spanwarden ] && prefix="spanwarden/$folder/"
  for module in $(cd "$REPO/$folder" && find . -name '*.py' | sed 's|^\./||'); do
    grep -qx "${prefix}${module}" "$WORK/wheel-files.txt" || { echo "missing from the wheel: $folder/$module"; exit 1; }
  done
done

cd "$WORK"  # from here on nothing may come from the checkout

say "the light agent install (no extras)"
python3 -m venv "$WORK/agent"
"$WORK/agent/bin/pip" install --quiet "$WHEEL"
"$WORK/agent/bin/spanwarden" --help > /dev/null
"$WORK/agent/bin/spanwarden" bench agent-import --json | tee "$WORK/agent-import.json"
"$WORK/agent/bin/python" - "$WORK/agent-import.json" <<'PY'
import json, sys
figures = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
assert figures["heavy_modules"] == [], figures
PY
if "$WORK/agent/bin/spanwarden" serve --port 0 --state-dir "$WORK/x" 2> "$WORK/no-extra.err"; then
  echo "serve ran without the server extra"; exit 1
fi
grep -q "pip install 'spanwarden\[server\]'" "$WORK/no-extra.err" || { cat "$WORK/no-extra.err"; exit 1; }
[ "$(grep -c . "$WORK/no-extra.err")" = 1 ] || { cat "$WORK/no-extra.err"; exit 1; }

say "the server install (spanwarden[server] alone: no Kafka, no Datadog)"
python3 -m venv "$WORK/server"
"$WORK/server/bin/pip" install --quiet "$WHEEL[server]"
PORT="$("$WORK/server/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$WORK/server/bin/spanwarden" serve --port "$PORT" --state-dir "$WORK/server-state" > "$WORK/server.log" 2>&1 &
SERVE_PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" > /dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$PORT/healthz" > /dev/null || { cat "$WORK/server.log"; exit 1; }
kill "$SERVE_PID"; wait "$SERVE_PID" || true; SERVE_PID=""
if "$WORK/server/bin/spanwarden" worker --bootstrap 127.0.0.1:1 --state-dir "$WORK/w" 2> "$WORK/no-kafka.err"; then
  echo "worker ran without the kafka extra"; exit 1
fi
grep -q "pip install 'spanwarden\[kafka\]'" "$WORK/no-kafka.err" || { cat "$WORK/no-kafka.err"; exit 1; }

say "the full install (spanwarden[all]) and the openai client"
python3 -m venv "$WORK/full"
# The openai client unpinned, as the README's quick start installs it: its newest release must work.
"$WORK/full/bin/pip" install --quiet "$WHEEL[all]" openai
S="$WORK/full/bin/spanwarden"
"$S" --help > /dev/null
"$S" worker --help > /dev/null
"$WORK/full/bin/python" -c "
from spanwarden.build_info import compiled_modules
modules = compiled_modules()
assert all(modules.values()), modules
print('package smoke: the hot path runs compiled:', ', '.join(modules))"
# The compiled modules decide as their source does: the detector, ladder and pipeline tests against the
# installed (compiled) wheel, from a copy of the tests outside the checkout, and the same seeded evaluation
# through both (the checkout's editable install runs the source).
"$WORK/full/bin/pip" install --quiet "$WHEEL[all,test]"
cp -r "$REPO/tests" "$WORK/tests"
(cd "$WORK" && "$WORK/full/bin/python" -m pytest -q -p no:cacheprovider tests/detectors tests/enforcers \
  tests/test_pipeline.py tests/test_pipeline_time.py tests/test_model_gate.py tests/collector/test_normalize.py \
  tests/collector/test_normalize_equivalence.py tests/collector/test_normalize_wire.py tests/test_event_time_settle.py \
  | tail -1)
EVAL=(eval --json --seed 4 --agents 20 --days 2 --incidents-per-kind 1)
"$S" "${EVAL[@]}" 2> /dev/null | tail -1 > "$WORK/eval-compiled.json"
(cd "$REPO" && "$(dirname "$PY")/spanwarden" "${EVAL[@]}" 2> /dev/null | tail -1) > "$WORK/eval-source.json"
cmp -s "$WORK/eval-compiled.json" "$WORK/eval-source.json" \
  || { echo "the compiled wheel decided differently from the source:"; cat "$WORK"/eval-*.json; exit 1; }
say "the seeded evaluation decides the same compiled and from source"
# The Dockerfile's entry point and docker-compose's commands parse with the installed CLI.
"$WORK/full/bin/python" - "$REPO/docker-compose.yml" <<'PY'
import sys, typer.main, yaml
from spanwarden.cli import app
group = typer.main.get_command(app)
services = yaml.safe_load(open(sys.argv[1]))["services"]
for name, service in services.items():
    if service.get("build") is None:
        continue
    args = service["command"]
    ctx = group.make_context("spanwarden", list(args), resilient_parsing=False)
    given = [*(getattr(ctx, "protected_args", None) or getattr(ctx, "_protected_args", [])), *ctx.args]
    sub_name, sub, rest = group.resolve_command(ctx, given)
    sub.make_context(sub_name, rest, parent=ctx)
    print(f"compose {name}: spanwarden {' '.join(args)} parses")
PY

PORT="$("$WORK/full/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
URL="http://127.0.0.1:$PORT"
"$S" serve --port "$PORT" --state-dir "$WORK/state" > "$WORK/serve.log" 2>&1 &
SERVE_PID=$!
for _ in $(seq 100); do curl -sf "$URL/healthz" > /dev/null && break; sleep 0.1; done
curl -sf "$URL/healthz" > /dev/null || { cat "$WORK/serve.log"; exit 1; }
say "serve answers /healthz on $URL"
curl -sf "$URL/sign-in" | grep -q 'id="sign-in"' && curl -sf "$URL/console/static/htmx.min.js" | grep -q htmx \
  || { echo "the web console's templates or htmx are missing from the wheel"; cat "$WORK/serve.log"; exit 1; }
say "the web console answers from the wheel (templates and htmx shipped)"
cp "$REPO/.ci/smoke_agent.py" "$REPO/tests/collector/fake_llm.py" "$WORK/"
export OTEL_BSP_SCHEDULE_DELAY=100 SPANWARDEN_STATE_DIR="$WORK/state" SPANWARDEN_URL="$URL"
"$WORK/full/bin/python" "$WORK/smoke_agent.py" "$URL" | tee "$WORK/first.json"
for _ in $(seq 150); do
  "$S" status --json > "$WORK/status.json" && grep -q '"smoke-agent"' "$WORK/status.json" && break; sleep 0.1
done
"$S" kill smoke-agent --reason "package smoke"
"$WORK/full/bin/python" "$WORK/smoke_agent.py" "$URL" | tee "$WORK/second.json"
"$WORK/full/bin/python" - "$WORK" <<'PY'
import json, sys
from pathlib import Path
work = Path(sys.argv[1])
first, second = (json.loads((work / f).read_text().strip().splitlines()[-1]) for f in ("first.json", "second.json"))
status = json.loads((work / "status.json").read_text())
assert str(work / "full") in first["spanwarden_from"], first  # the installed wheel, not the checkout
assert first["outcome"] == "called" and first["llm_requests"] == 1, first
assert any(a.startswith("openai (opentelemetry-instrumentation-openai-v2") for a in first["activated"]), first
assert any(a["agent"] == "smoke-agent" for a in status), status
assert second["outcome"] == "halted by human:" + second["outcome"].split(":", 1)[1], second
assert second["llm_requests"] == 0, second  # refused before the request went out
print("package smoke: the agent was seen, then refused after `spanwarden kill`")
PY
grep -q "new agent smoke-agent" "$WORK/serve.log" || { echo "serve did not log the new agent"; cat "$WORK/serve.log"; exit 1; }
kill "$SERVE_PID"; wait "$SERVE_PID" || true; SERVE_PID=""

say "spanwarden demo --json from the installed wheel"
"$S" demo --json > "$WORK/demo.json" 2> "$WORK/demo.err" || { tail -20 "$WORK/demo.err"; exit 1; }
"$WORK/full/bin/python" - "$WORK/demo.json" <<'PY'
import json, sys
outcome = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
missed = [i for i in outcome["incidents"] if not i["detected"]]
assert not missed and outcome["false_actions"] == [] and outcome["audit_verified"], outcome
print(f"package smoke: demo caught {len(outcome['incidents'])} incidents, no false actions, audit verified")
PY
say "passed"
