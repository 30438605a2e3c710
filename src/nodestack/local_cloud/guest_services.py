"""What a local instance reaches of its cloud: the AWS API and the instance metadata
service, served on the gateway of the cloud's Podman network.

The endpoint itself listens on loopback, which containers cannot reach; these listeners
are on the bridge's gateway address, so only the host and the cloud's own containers
reach them. Every instance gets a systemd manager drop-in that sets, for all its
services, the variables every AWS SDK reads: AWS_EC2_METADATA_SERVICE_ENDPOINT (where the
metadata service and so the instance profile's credentials are) and AWS_ENDPOINT_URL
(where the API is; botocore >= 1.31 and the JavaScript SDK v3 read it, older SDKs need
it passed). On AWS neither is set and the SDKs use 169.254.169.254 and the regional
endpoints; the image holds nothing of this (the drop-in is mounted, never baked).
"""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from nodestack.local_cloud.request_log import WsgiApp

LOG = logging.getLogger("nodestack.guest_services")
DROP_IN_MOUNT = "/etc/systemd/system.conf.d/50-nodestack-local-cloud.conf"
_IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)  # Linux; Python 3.11 does not name it


@dataclass(frozen=True)
class GuestEndpoints:
    api: str
    metadata: str

    def drop_in(self) -> str:
        return ("# The local cloud's endpoints for every AWS SDK on this instance (mounted by the data plane).\n"
                "[Manager]\n"
                f'DefaultEnvironment="AWS_ENDPOINT_URL={self.api}" '
                f'"AWS_EC2_METADATA_SERVICE_ENDPOINT={self.metadata}"\n')


def _listening_socket(address: str) -> socket.socket:
    """A listening socket on `address`, bound before the address exists: a CNI bridge gets
    its gateway address only when the first container joins the network."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_IP, _IP_FREEBIND, 1)
    sock.bind((address, 0))
    sock.listen(128)
    return sock


class GuestServices:
    """`ensure(gateway)` serves the API app and the metadata app on the gateway (once) and
    returns the drop-in file to mount into each instance."""

    def __init__(self, api: tuple[WsgiApp, type[WSGIRequestHandler]], metadata_app: WsgiApp, state: Path) -> None:
        self._apps = (api, (metadata_app, WSGIRequestHandler))
        self._file = state / "local-cloud-endpoints.conf"
        self._servers: list[BaseWSGIServer] = []
        self._gateway: str | None = None

    def ensure(self, gateway: str) -> Path:
        if self._gateway != gateway:
            self.stop()
            ports = []
            for app, handler in self._apps:
                sock = _listening_socket(gateway)
                try:
                    server = make_server(gateway, sock.getsockname()[1], app, threaded=True, request_handler=handler,
                                         fd=sock.fileno())
                finally:
                    sock.close()  # the server holds its own duplicate
                threading.Thread(target=server.serve_forever, name=f"guest-{server.port}", daemon=True).start()
                self._servers.append(server)
                ports.append(server.port)
            self._gateway = gateway
            endpoints = GuestEndpoints(f"http://{gateway}:{ports[0]}", f"http://{gateway}:{ports[1]}")
            self._file.parent.mkdir(parents=True, exist_ok=True)
            self._file.write_text(endpoints.drop_in())
            LOG.info("instances reach the API at %s and the metadata service at %s", endpoints.api,
                     endpoints.metadata)
        return self._file

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()
        self._gateway = None
