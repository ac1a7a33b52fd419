"""Every failure a user can cause ends in one line on stderr that says what happened and what to do, and a
non-zero exit; the traceback only with `--debug` (or SPANWARDEN_DEBUG=1)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

# Exit codes: 1 the service refused, 2 a usage, set-up or connection problem, 3 nothing done because the
# named agent is unknown to the service.
REFUSED, PROBLEM, UNKNOWN_AGENT = 1, 2, 3

# Which extra brings a module that a command needs (`pip install 'spanwarden[EXTRA]'`).
EXTRA_OF = {
    "aiohttp": "server", "numpy": "server", "scipy": "server", "sklearn": "server", "pydantic": "server",
    "pydantic_settings": "server", "yaml": "server", "orjson": "server", "prometheus_client": "server",
    "psutil": "server", "google": "server", "sqlglot": "server",
    "faust": "kafka", "aiokafka": "kafka", "mode": "kafka",
    "datadog_api_client": "datadog", "urllib3": "datadog",
    "openai": "openai",
}


class CliError(Exception):
    """A failure to tell the user in one line, with the exit code to leave with."""

    def __init__(self, message: str, code: int = PROBLEM) -> None:
        super().__init__(message)
        self.code = code


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or exc.__class__.__name__


def _known(exc: BaseException) -> CliError | None:
    """The one-line form of the errors spanwarden's own modules raise at start-up, if `exc` is one."""
    if isinstance(exc, CliError):
        return exc
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        top = exc.name.split(".")[0]
        extra = EXTRA_OF.get(top)
        if extra is not None:
            return CliError(f"this command needs spanwarden's {extra} extra (no module {exc.name!r}): "
                            f"pip install 'spanwarden[{extra}]'")
    names = {cls.__name__ for cls in type(exc).__mro__}
    startup = {"StateDirError", "ListenError", "BrokerUnreachable", "PolicyError", "PriceTableError",
               "AuditError", "TokenFileError", "LocalStackError"}
    if names & startup:
        return CliError(one_line(exc))
    if isinstance(exc, PermissionError | FileNotFoundError | IsADirectoryError | NotADirectoryError):
        where = f" {exc.filename}" if exc.filename else ""
        return CliError(f"cannot use{where}: {exc.strerror or one_line(exc)}")
    return None


def run(app: Callable[..., object], argv: Sequence[str] | None = None) -> int:
    """Run the typer app; returns the exit code (what `main` exits with)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("SPANWARDEN_DEBUG", "") not in ("", "0")
    args = [a for a in args if a != "--debug"]
    try:
        app(args=args, prog_name="spanwarden")  # typer itself says usage errors in one line (exit 2)
        return 0
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if debug:
            raise
        known = _known(exc)
        if known is not None:
            print(f"spanwarden: {known}", file=sys.stderr)
            return known.code
        print(f"spanwarden: unexpected {exc.__class__.__name__}: {one_line(exc)} (run again with --debug for the "
              "traceback)", file=sys.stderr)
        return 1
