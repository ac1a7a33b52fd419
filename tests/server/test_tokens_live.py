"""Named tokens while the service runs, on both runtimes over real HTTP: a token added with `token add`
is accepted without a restart (the book looks at tokens.yaml's mtime at most once a second), a file
broken meanwhile keeps the tokens read before; names are unique and `admin` is the service's own."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from spanwarden.cli import app as cli_app
from spanwarden.cli.errors import run
from spanwarden.enforcers.roles import Role, TokenBook, TokenFileError, add_token
from tests.server.conftest import RUNTIMES, start


def _status_within(up, token: str, wanted: int, seconds: float = 5.0) -> int:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while True:
        code = up.get("/v1/status", token).status_code
        if code == wanted or time.monotonic() > deadline:
            return int(code)
        time.sleep(0.2)


@pytest.mark.parametrize("kind", RUNTIMES)
def test_a_token_added_while_serving_is_accepted_without_restart(kind: str, tmp_path: Path) -> None:
    up, stop = start(kind, tmp_path / kind)
    try:
        path = up.state_dir / "tokens.yaml"
        fresh = add_token(path, "late-viewer", Role.VIEWER)
        assert _status_within(up, fresh, 200) == 200
        path.write_text("tokens: [oops")  # broken by hand meanwhile: logged, the tokens read before stay
        time.sleep(1.2)
        assert up.get("/v1/status", fresh).status_code == 200
    finally:
        stop()


def test_the_book_looks_at_the_file_at_most_once_a_second(tmp_path: Path) -> None:
    path, now = tmp_path / "tokens.yaml", {"t": 0.0}
    first = add_token(path, "vera", Role.VIEWER)
    book = TokenBook(TokenBook.load(path)._by_digest, path, clock=lambda: now["t"])
    second = add_token(path, "omar", Role.ONCALL)
    assert book.authenticate(f"Bearer {first}") is not None
    assert book.authenticate(f"Bearer {second}") is None  # within the second: not looked at yet
    now["t"] = 1.5
    found = book.authenticate(f"Bearer {second}")
    assert found is not None and found.actor == "human:omar"


def test_names_are_unique_and_admin_is_reserved(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    add_token(path, "vera", Role.VIEWER)
    for name in ("vera", "admin"):
        with pytest.raises(TokenFileError):
            add_token(path, name, Role.ONCALL)
    assert [e["name"] for e in yaml.safe_load(path.read_text())["tokens"]] == ["vera"]
    replaced = add_token(path, "vera", Role.VIEWER, replace=True)
    book = TokenBook.load(path)
    assert book.authenticate(f"Bearer {replaced}") is not None and len(book._by_digest) == 1


def test_a_hand_edited_file_with_a_duplicate_or_admin_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    for names in (["ana", "ana"], ["admin"]):
        path.write_text(yaml.safe_dump({"tokens": [{"name": n, "role": "oncall", "sha256": "a" * 63 + str(i)}
                                                   for i, n in enumerate(names)]}))
        with pytest.raises(TokenFileError, match="tokens.[01]: the name"):
            TokenBook.load(path, "the-admin-token")


def test_token_add_cli_refuses_a_duplicate_in_one_line_and_says_no_restart_is_needed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["token", "add", "ana", "--role", "oncall", "--state-dir", str(tmp_path)]
    assert run(cli_app, args) == 0
    assert "running service picks it up" in capsys.readouterr().err
    assert run(cli_app, args) == 2
    assert "already exists" in capsys.readouterr().err.strip()
    assert run(cli_app, [*args[:2], "admin", *args[3:]]) == 2
    err = capsys.readouterr().err
    assert "reserved" in err and len(err.strip().splitlines()) == 1
