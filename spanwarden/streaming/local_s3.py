"""A small S3-compatible object store on loopback, files in a folder: the storage Tansu keeps its topics in
when a local broker must survive a restart with its data (`LocalBroker(storage_dir=...)`).

The Tansu build the tests use has two storage engines, memory and S3 (no SQLite, no PostgreSQL: those
features are not compiled in), so a broker whose data outlives it needs an S3 endpoint. This one serves the
calls Tansu's object store makes — PUT (with `If-Match` / `If-None-Match`, its compare-and-swap), GET, HEAD,
DELETE and ListObjectsV2 — on path-style URLs, without signatures (loopback only, for tests and the bench).
Objects are files under `root/<bucket>/<key>`, so the store itself can be stopped and started again too."""

from __future__ import annotations

import hashlib
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

_LOCK = threading.Lock()  # one compare-and-swap at a time across every request thread
_SUFFIX = ".object"  # keys may be both an object and a prefix of others: files carry a suffix, folders not


def _etag(data: bytes) -> str:
    return f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'


class _Handler(BaseHTTPRequestHandler):
    server: LocalS3
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
        return

    def _split(self) -> tuple[str, str, dict[str, list[str]]]:
        url = urlsplit(self.path)
        bucket, _, key = url.path.lstrip("/").partition("/")
        return unquote(bucket), unquote(key), parse_qs(url.query, keep_blank_values=True)

    def _file(self, bucket: str, key: str) -> Path:
        path = (self.server.root / bucket / (key + _SUFFIX)).resolve()
        if self.server.root.resolve() not in path.parents:
            raise ValueError(f"key outside the store: {key!r}")
        return path

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, code: str) -> None:
        self._send(status, f"<Error><Code>{code}</Code><Message>{code}</Message></Error>".encode(),
                   {"Content-Type": "application/xml"})

    def do_PUT(self) -> None:  # noqa: N802 - the stdlib's name
        bucket, key, _ = self._split()
        data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if not key:
            (self.server.root / bucket).mkdir(parents=True, exist_ok=True)
            return self._send(200)
        path = self._file(bucket, key)
        with _LOCK:
            current = _etag(path.read_bytes()) if path.exists() else None
            if_match, if_none = self.headers.get("If-Match"), self.headers.get("If-None-Match")
            if (if_none == "*" and current is not None) or (if_match is not None and if_match != current):
                return self._error(412, "PreconditionFailed")
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(path.name + ".partial")
            partial.write_bytes(data)
            partial.replace(path)
        self._send(200, headers={"ETag": _etag(data)})

    def _read(self) -> None:
        bucket, key, query = self._split()
        if not key:
            return self._list(bucket, query)
        path = self._file(bucket, key)
        with _LOCK:
            data = path.read_bytes() if path.exists() else None
            modified = path.stat().st_mtime if data is not None else 0.0
        if data is None:
            return self._error(404, "NoSuchKey")
        etag = _etag(data)
        if self.headers.get("If-Match") not in (None, etag):
            return self._error(412, "PreconditionFailed")
        if self.headers.get("If-None-Match") == etag:
            return self._send(304, headers={"ETag": etag})
        status, body, extra = 200, data, {}
        wanted = self.headers.get("Range", "")
        if wanted.startswith("bytes="):
            first, _, last = wanted.removeprefix("bytes=").partition("-")
            start = int(first) if first else max(0, len(data) - int(last))
            end = int(last) if first and last else len(data) - 1
            body, status = data[start:end + 1], 206
            extra = {"Content-Range": f"bytes {start}-{start + len(body) - 1}/{len(data)}"}
        self._send(status, body, {"ETag": etag, "Last-Modified": formatdate(modified, usegmt=True),
                                  "Content-Type": "application/octet-stream", **extra})

    do_GET = _read  # noqa: N815 - the stdlib's name
    do_HEAD = _read  # noqa: N815 - the stdlib's name

    def do_DELETE(self) -> None:  # noqa: N802 - the stdlib's name
        bucket, key, _ = self._split()
        with _LOCK:
            self._file(bucket, key).unlink(missing_ok=True)
        self._send(204)

    def _list(self, bucket: str, query: dict[str, list[str]]) -> None:
        prefix = query.get("prefix", [""])[0]
        delimiter = query.get("delimiter", [""])[0]
        after = query.get("start-after", [""])[0]
        folder = self.server.root / bucket
        with _LOCK:
            found = sorted((str(p.relative_to(folder))[:-len(_SUFFIX)], p.stat().st_size, p.stat().st_mtime)
                           for p in folder.rglob("*" + _SUFFIX)) if folder.exists() else []
        contents, prefixes = [], set()
        for key, size, modified in found:
            if not key.startswith(prefix) or key <= after:
                continue
            rest = key[len(prefix):]
            if delimiter and delimiter in rest:
                prefixes.add(prefix + rest.split(delimiter, 1)[0] + delimiter)
                continue
            when = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(modified))
            contents.append(f"<Contents><Key>{escape(key)}</Key><Size>{size}</Size>"
                            f"<LastModified>{when}</LastModified><StorageClass>STANDARD</StorageClass></Contents>")
        common = "".join(f"<CommonPrefixes><Prefix>{escape(p)}</Prefix></CommonPrefixes>"
                         for p in sorted(prefixes))
        body = (f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>{escape(bucket)}</Name>'
                f"<Prefix>{escape(prefix)}</Prefix><KeyCount>{len(contents) + len(prefixes)}</KeyCount>"
                f"<IsTruncated>false</IsTruncated>{''.join(contents)}{common}</ListBucketResult>")
        self._send(200, body.encode(), {"Content-Type": "application/xml"})


class LocalS3(ThreadingHTTPServer):
    """`LocalS3(root).start()` serves `root` on 127.0.0.1:`port` until `stop()`."""

    daemon_threads = True

    def __init__(self, root: Path, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.root = root
        self.port = int(self.server_address[1])
        self._thread: threading.Thread | None = None

    def start(self) -> LocalS3:
        self.root.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self.serve_forever, name="local-s3", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
