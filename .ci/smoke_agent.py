"""An agent as a stranger writes it: the real openai client and the one-line `spanwarden.instrument`, against
a loopback fake OpenAI server. Prints one JSON line: what happened to its call."""

from __future__ import annotations

import json
import sys

import openai
from fake_llm import FakeLLM, fake_llm  # the tests' loopback LLM server, copied beside this script

import spanwarden

service_url = sys.argv[1]
with fake_llm() as llm:
    handle = spanwarden.instrument(agent_id="smoke-agent", owner="alice@example.com", team="smoke",
                                   environment="prod", endpoint=service_url)
    client = openai.OpenAI(base_url=f"{llm}/v1", api_key="sk-smoke", max_retries=0)
    try:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}])
        outcome = "called"
    except spanwarden.AgentHalted as exc:
        outcome = f"halted by {exc.decided_by}"
    handle.shutdown()
    print(json.dumps({"outcome": outcome, "llm_requests": len(FakeLLM.received),
                      "activated": [str(a) for a in handle.instrumentations],
                      "spanwarden_from": spanwarden.__file__}))
