"""Log every AWS API call the local endpoint serves, so the benchmark can count them."""

from __future__ import annotations

import io
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")
# The endpoint's own paths, not AWS calls: moto's API and the local cloud's ping (server.PING_PATH).
NOT_AWS = ("/moto-api", "/_nodestack/")
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def describe_call(environ: dict[str, Any], body: bytes) -> tuple[str, str]:
    """Return (service, action) of one request, for query, JSON and REST protocols."""
    match = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    service = match.group(1) if match else "unsigned"
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return service, target.rsplit(".", 1)[-1]
    params = parse_qs(environ.get("QUERY_STRING", ""))
    if "form-urlencoded" in environ.get("CONTENT_TYPE", ""):
        params.update(parse_qs(body.decode("utf-8", "replace")))
    if "Action" in params:
        return service, params["Action"][0]
    return service, f"{environ.get('REQUEST_METHOD', '?')} {environ.get('PATH_INFO', '')}"


class RequestLog:
    """WSGI middleware appending one JSON line per request to a file."""

    def __init__(self, app: WsgiApp, path: Path) -> None:
        self.app = app
        self.path = path
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        service, action = describe_call(environ, body)
        if not environ.get("PATH_INFO", "").startswith(NOT_AWS):
            line = json.dumps({"t": round(time.time(), 3), "service": service, "action": action})
            with self.lock, self.path.open("a", encoding="utf-8") as fh:
                fh.write(line + "\n")
        return self.app(environ, start_response)


def count_calls(path: Path, since_offset: int = 0) -> tuple[int, Counter[str]]:
    """Count calls logged after byte offset `since_offset`; returns (total, per service:action)."""
    if not path.exists():
        return 0, Counter()
    with path.open("rb") as fh:
        fh.seek(since_offset)
        rows = [json.loads(line) for line in fh if line.strip()]
    per = Counter(f"{r['service']}:{r['action']}" for r in rows)
    return len(rows), per


def log_size(path: Path) -> int:
    """Current size of the request log, to count calls made after this point."""
    return path.stat().st_size if path.exists() else 0
