"""The web console at `/`: Fleet, Agent, Approvals and Audit pages, server-rendered (Jinja2, htmx shipped in
the package, charts as inline SVG), signed in with a named token, acting through the service's own API."""

from spanwarden.console.routes import ROLES, ROUTES, add_routes, for_app

__all__ = ["ROLES", "ROUTES", "add_routes", "for_app"]
