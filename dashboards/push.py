"""`spanwarden datadog push`: create or update spanwarden's dashboards and monitors (dashboards/definitions)
so that pushing twice changes nothing the second time. Dashboards are matched by title, monitors by name
among those tagged `managed-by:spanwarden`; one is updated only when something spanwarden sets differs
(Datadog adds ids and defaults of its own, which are left alone)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datadog_api_client import ApiClient, Configuration
from datadog_api_client.model_utils import validate_and_convert_types
from datadog_api_client.v1.api.dashboards_api import DashboardsApi
from datadog_api_client.v1.api.monitors_api import MonitorsApi
from datadog_api_client.v1.model.dashboard import Dashboard
from datadog_api_client.v1.model.monitor import Monitor
from datadog_api_client.v1.model.monitor_update_request import MonitorUpdateRequest

DEFINITIONS = Path(__file__).parent / "definitions"
MANAGED_TAG = "managed-by:spanwarden"


@dataclass(frozen=True)
class Change:
    kind: str  # dashboard | monitor
    name: str
    verb: str  # create | update | unchanged | would send
    id: str = ""


def dashboards() -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(DEFINITIONS.glob("*.json")) if p.name != "monitors.json"]


def monitors() -> list[dict[str, Any]]:
    loaded: list[dict[str, Any]] = json.loads((DEFINITIONS / "monitors.json").read_text())
    return loaded


def as_model(body: dict[str, Any], model: type) -> Any:
    """The client's model for a definition: the client validates it as the API would (types, enums)."""
    return validate_and_convert_types(body, (model,), ["body"], True, True, Configuration())


def covers(current: Any, wanted: Any) -> bool:
    """Whether `current` (as Datadog returns it) has every value `wanted` sets."""
    if isinstance(wanted, dict):
        return isinstance(current, dict) and all(covers(current.get(k), v) for k, v in wanted.items())
    if isinstance(wanted, list):
        return (isinstance(current, list) and len(current) == len(wanted)
                and all(covers(c, w) for c, w in zip(current, wanted, strict=True)))
    return bool(current == wanted)


def dry_run() -> list[tuple[Change, dict[str, Any]]]:
    """What a push would send, validated, without contacting Datadog."""
    out = [(Change("dashboard", d["title"], "would send"), as_model(d, Dashboard).to_dict()) for d in dashboards()]
    out += [(Change("monitor", m["name"], "would send"), as_model(m, Monitor).to_dict()) for m in monitors()]
    return out


def push(configuration: Configuration) -> list[Change]:
    changes: list[Change] = []
    with ApiClient(configuration) as client:
        boards = DashboardsApi(client)
        existing = {d.title: d.id for d in boards.list_dashboards().dashboards}
        for body in dashboards():
            model = as_model(body, Dashboard)
            wanted = model.to_dict()
            key = existing.get(body["title"])
            if key is None:
                changes.append(Change("dashboard", body["title"], "create", boards.create_dashboard(model).id))
            elif covers(boards.get_dashboard(key).to_dict(), wanted):
                changes.append(Change("dashboard", body["title"], "unchanged", key))
            else:
                boards.update_dashboard(key, model)
                changes.append(Change("dashboard", body["title"], "update", key))
        alerts = MonitorsApi(client)
        current = {m.name: m for m in alerts.list_monitors(monitor_tags=MANAGED_TAG)}
        for body in monitors():
            model = as_model(body, Monitor)
            found = current.get(body["name"])
            if found is None:
                changes.append(Change("monitor", body["name"], "create", str(alerts.create_monitor(model).id)))
            elif covers(found.to_dict(), model.to_dict()):
                changes.append(Change("monitor", body["name"], "unchanged", str(found.id)))
            else:
                alerts.update_monitor(found.id, as_model(body, MonitorUpdateRequest))
                changes.append(Change("monitor", body["name"], "update", str(found.id)))
    return changes

