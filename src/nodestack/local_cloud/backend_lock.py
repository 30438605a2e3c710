"""One lock over moto's in-memory backends, shared by the API requests and the data plane.

moto's backends are plain Python objects that expect one caller at a time, but the endpoint
serves requests on many threads and the data plane's thread changes the same objects (Auto
Scaling replacing an unhealthy instance, a refresh terminating a batch). Without one lock a
DescribeAutoScalingGroups could answer between "instance detached" and "replacement
launched", a state AWS never shows, and two writers could corrupt a backend's dicts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from nodestack.local_cloud.request_log import WsgiApp

BACKENDS = threading.RLock()


def serialized(app: WsgiApp) -> WsgiApp:
    """Run each request with the backends locked; moto builds the whole body inside the call."""
    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        with BACKENDS:
            return app(environ, start_response)
    return wsgi
