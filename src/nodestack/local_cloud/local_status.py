"""`nodestack local status [--json]` and `nodestack local curl URL`: what the local cloud
runs, and a request through a load balancer by its DNS name."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from nodestack.local_cloud import server
from nodestack.local_cloud.dns import DnsQueryError, query_a


def snapshot() -> dict[str, Any] | None:
    """The status as one object, or None when the local cloud is stopped."""
    running = server.current()
    if running is None:
        return None
    plane = server.data_plane_status() or {}
    return {
        "endpoint": running.url,
        "answering": server.answers(running.url),
        "pid": running.pid,
        "dns": plane.get("dns", f"127.0.0.1:{running.dns_port}" if running.dns_port else None),
        "apps": plane.get("apps", []),
        "load_balancers": plane.get("load_balancers", []),
        "instances": plane.get("instances", []),
        "errors": plane.get("errors", {}),
    }


def show(as_json: bool) -> int:
    status = snapshot()
    if status is None:
        print(json.dumps({"endpoint": None, "state": "stopped"}) if as_json else "local cloud: stopped")
        return 3  # like `systemctl status` of a stopped unit
    code = 0 if status["answering"] else 1
    if as_json:
        print(json.dumps(status, indent=2))
        return code
    state = "running" if status["answering"] else "not answering"
    print(f"local cloud: {state} at {status['endpoint']} (pid {status['pid']}); DNS {status['dns'] or 'off'}")
    for lb in status["load_balancers"]:
        print(f"  load balancer {lb['name']}: {lb['url']} ({lb['dns_name']}) "
              f"{'serving' if lb.get('healthy') else 'no healthy target'}")
    for item in status["instances"]:
        where = f"container {item['container']} at {item['address']}" if item.get("container") else item["data_plane"]
        print(f"  instance {item['id']} {item['zone']} {item['state']}: {where}; health {item['health']}")
    for url in status["apps"]:
        print(f"  app {url}: fetch it through its load balancer with `nodestack local curl {url}`")
    for key, message in status["errors"].items():
        print(f"  error {key}: {message}")
    return code


def fetch(url: str | None, timeout: float = 10.0) -> int:
    """GET url with its host resolved by the local DNS server; prints the body."""
    if not url:
        print("nodestack: error: give a URL, e.g. nodestack local curl http://app.local.example.com/", file=sys.stderr)
        return 2
    status = snapshot()
    if status is None or not status["dns"]:
        print("nodestack: error: the local cloud is not running: `nodestack local up` first", file=sys.stderr)
        return 2
    parts = urllib.parse.urlsplit(url)
    host, _, port = str(status["dns"]).partition(":")
    try:
        addresses = query_a((host, int(port)), parts.hostname or "")
    except DnsQueryError as exc:
        print(f"nodestack: error: {exc}", file=sys.stderr)
        return 1
    if not addresses or not addresses[0].startswith("127."):
        print(f"nodestack: error: {parts.hostname} resolves to {addresses or 'nothing'}, not a local load balancer",
              file=sys.stderr)
        return 1
    netloc = addresses[0] + (f":{parts.port}" if parts.port else "")
    request = urllib.request.Request(urllib.parse.urlunsplit(parts._replace(netloc=netloc)),
                                     headers={"Host": parts.netloc})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            sys.stdout.write(response.read().decode(errors="replace"))
            return 0
    except urllib.error.HTTPError as exc:
        print(f"HTTP {exc.code}: {exc.read().decode(errors='replace')[:500]}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"nodestack: error: {url} via {addresses[0]}: {exc}", file=sys.stderr)
        return 1
