"""The local AWS endpoint process: moto's server app, the project's fixes, a request log.

Run by `nodestack local up` as `python -m nodestack.local_cloud.endpoint`.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from moto.moto_server.threaded_moto_server import MotoRequestHandler
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

from nodestack.local_cloud import fixes
from nodestack.local_cloud.request_log import RequestLog


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--request-log", type=Path, required=True)
    parser.add_argument("--no-fixes", action="store_true", help="plain moto, to show what each fix changes")
    args = parser.parse_args(argv)
    if not args.no_fixes:
        print("fixes applied:", ", ".join(fixes.apply_all()), flush=True)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = RequestLog(DomainDispatcherApplication(create_backend_app), args.request_log)
    run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
