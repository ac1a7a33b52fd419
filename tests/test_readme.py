"""The README keeps up with the code: every setting the service reads and every variable the agent side
reads is in its configuration section, and every HTTP route of `serve` is in its endpoint list."""

from __future__ import annotations

from pathlib import Path

from spanwarden.collector import instrument, instrumentations
from spanwarden.settings import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end > 0 else None]


def test_every_setting_is_in_the_configuration_table():
    table = section("Configuration")
    missing = [f"SPANWARDEN_{name.upper()}" for name in Settings.model_fields
               if f"`SPANWARDEN_{name.upper()}`" not in table]
    assert not missing, f"settings missing from the README's configuration table: {missing}"


def test_every_agent_side_variable_is_documented():
    names = {v for k, v in vars(instrument).items() if k.startswith("ENV_")}
    names.add(instrumentations.ENV_INSTRUMENTATIONS)
    missing = sorted(n for n in names if f"`{n}`" not in README)
    assert not missing, f"agent-side variables the README does not name: {missing}"


def test_every_route_of_serve_is_in_the_endpoint_list(tmp_path):
    from spanwarden.embedded.service import EmbeddedService

    service = EmbeddedService(Settings(port=0, state_dir=tmp_path, audit_fsync="never"))
    try:
        routes = {(r.method, r.resource.canonical) for r in service.build_app().router.routes()
                  if r.method != "HEAD" and r.resource is not None}
    finally:
        service.claim.release()
    listed = section("HTTP endpoints")
    missing = sorted(f"{m} {p}" for m, p in routes if f"`{m} {p}`" not in listed)
    assert not missing, f"routes missing from the README's endpoint list: {missing}"
