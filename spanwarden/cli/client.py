"""The CLI's side of the service's HTTP API: which service (`--url`), with which token, and every way a call
can fail said in one line — unreachable, not a URL, not a spanwarden service, refused, unknown agent."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import typer

from spanwarden.cli.errors import PROBLEM, REFUSED, UNKNOWN_AGENT, CliError

DEFAULT_URL = "http://127.0.0.1:4318"
IDENTITY_HEADER = "X-Spanwarden"  # every spanwarden response carries it (spanwarden.server.http_hints)

URL = typer.Option(DEFAULT_URL, envvar="SPANWARDEN_URL", help="the service [SPANWARDEN_URL]")
STATE = typer.Option(Path(".spanwarden"), envvar="SPANWARDEN_STATE_DIR", help="where admin.token is")


def checked_url(url: str) -> str:
    """`url` as a base URL, or a one-line error when it is not one (e.g. a missing scheme)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        example = f"http://{url.strip()}" if "://" not in url else DEFAULT_URL
        raise CliError(f"--url / SPANWARDEN_URL {url!r} is not an http(s) URL: use e.g. {example}")
    return url.strip().rstrip("/")


def token(state_dir: Path) -> str:
    """Your token (SPANWARDEN_TOKEN), else the service's admin token (SPANWARDEN_ADMIN_TOKEN or the file)."""
    given = os.environ.get("SPANWARDEN_TOKEN") or os.environ.get("SPANWARDEN_ADMIN_TOKEN")
    if given:
        return given
    path = state_dir / "admin.token"
    try:
        return path.read_text().strip()
    except OSError:
        raise CliError(f"no token: set SPANWARDEN_TOKEN (see `spanwarden token add`) or run where {path} is "
                       "readable (--state-dir / SPANWARDEN_STATE_DIR)") from None


def post(url: str, path: str, state_dir: Path, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """POST to the running service with your token."""
    return call("POST", url, path, state_dir, body or {})


def get(url: str, path: str, state_dir: Path) -> dict[str, Any]:
    """GET from the running service with your token."""
    return call("GET", url, path, state_dir, None)


def call(method: str, url: str, path: str, state_dir: Path, body: dict[str, Any] | None) -> dict[str, Any]:
    base = checked_url(url)
    try:
        response = requests.request(method, f"{base}{path}", json=body, timeout=15,
                                    headers={"Authorization": f"Bearer {token(state_dir)}"})
    except requests.exceptions.SSLError as exc:
        raise CliError(f"TLS with {base} failed ({_cause(exc)}): check the URL's scheme and "
                       "REQUESTS_CA_BUNDLE") from None
    except requests.exceptions.Timeout:
        raise CliError(f"{base} did not answer within 15 s: is the service overloaded or the URL wrong?") from None
    except requests.RequestException as exc:
        raise CliError(f"cannot reach spanwarden at {base} ({_cause(exc)}): is `spanwarden serve` running "
                       "there? Set --url or SPANWARDEN_URL") from None
    return _answer(base, path, response)


def _answer(base: str, path: str, response: requests.Response) -> dict[str, Any]:
    if IDENTITY_HEADER not in response.headers:
        raise CliError(f"{base} is not a spanwarden service (it answered {path} with HTTP "
                       f"{response.status_code}, without spanwarden's {IDENTITY_HEADER} header): check --url / "
                       "SPANWARDEN_URL")
    try:
        answer = response.json()
    except ValueError:
        answer = None
    message = answer.get("message") if isinstance(answer, dict) else None
    if response.status_code == 404 and isinstance(answer, dict) and answer.get("unknown_agent"):
        raise CliError(f"warning: {message}", UNKNOWN_AGENT)
    if response.status_code != 200:
        code = REFUSED if response.status_code in (400, 401, 403, 404, 409) else PROBLEM
        raise CliError(f"refused ({response.status_code}): {message or response.text.strip()[:300]}", code)
    if not isinstance(answer, dict):
        raise CliError(f"{base}{path} answered 200 without a JSON object: is this spanwarden's API?")
    return answer


def _cause(exc: BaseException) -> str:
    """The innermost reason (e.g. "Connection refused") instead of urllib3's nested repr."""
    text = str(exc)
    for known in ("Connection refused", "Name or service not known", "No route to host", "Network is unreachable",
                  "Temporary failure in name resolution", "certificate verify failed", "wrong version number"):
        if known in text:
            return known.lower()
    return text.split(":")[-1].strip(" )'\"") or exc.__class__.__name__
