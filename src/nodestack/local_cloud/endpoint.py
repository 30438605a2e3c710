"""The local AWS endpoint process: moto's server app, the project's fixes, a request log,
and the data plane (containers, HAProxy, DNS) beside it.

Run by `nodestack local up` as `python -m nodestack.local_cloud.endpoint`.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from moto.moto_server.threaded_moto_server import MotoRequestHandler
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

from nodestack.local_cloud import fixes
from nodestack.local_cloud.backend_lock import serialized
from nodestack.local_cloud.request_log import RequestLog, WsgiApp
from nodestack.local_cloud.server import PING_PATH


def with_ping(app: WsgiApp) -> WsgiApp:
    """A probe that answers at once, unlike /moto-api/data.json, which serialises every backend."""
    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == PING_PATH:
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        return app(environ, start_response)
    return wsgi


def _stop_on_sigterm(*_: object) -> None:
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--request-log", type=Path, required=True)
    parser.add_argument("--no-fixes", action="store_true", help="plain moto, to show what each fix changes")
    parser.add_argument("--data-plane", type=Path, default=None,
                        help="state directory of the data plane; without it the endpoint is API-only")
    parser.add_argument("--dns-port", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    if not args.no_fixes:
        print("fixes applied:", ", ".join(fixes.apply_all()), flush=True)
    app = RequestLog(with_ping(serialized(DomainDispatcherApplication(create_backend_app))), args.request_log)
    controller = None
    if args.data_plane is not None and not args.no_fixes:
        from nodestack.local_cloud.data_plane import Controller

        controller = Controller(args.port, args.dns_port, args.data_plane, api=(app, MotoRequestHandler))
        controller.start()
        print(f"data plane: DNS on 127.0.0.1:{controller.dns.port}, state in {args.data_plane}", flush=True)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    finally:
        if controller is not None:
            controller.stop()


if __name__ == "__main__":
    main()
