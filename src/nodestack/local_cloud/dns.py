"""A DNS server on loopback answering the emulator's Route53 hosted zones.

Runs inside the local endpoint process, next to moto, and reads moto's Route53
backend at every query, so zones and records changed through the API answer at
once. Load balancer names (and aliases to them) answer the loopback address of
the balancer's HAProxy, as told by a `LoadBalancerLookup`. See
`nodestack.local_cloud.dns_zones` for the routing policies and what is simplified.

    server = DnsServer(lookup_lb)
    server.start()
    query_a(("127.0.0.1", server.port), "app.example.com")  # ['127.0.0.2']
    server.stop()
"""

from __future__ import annotations

import logging
import random
import socket
import socketserver
import threading
from collections.abc import Callable, Iterable
from typing import Any

from dnslib import QTYPE, RCODE, DNSError, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSLogger, DNSServer

from nodestack.local_cloud.dns_zones import (
    LoadBalancerLookup,
    LoadBalancerView,
    ZoneAnswerer,
    moto_zones,
)

__all__ = ["DnsQueryError", "DnsServer", "LoadBalancerLookup", "LoadBalancerView", "Route53Resolver", "query_a"]

_log = logging.getLogger(__name__)
_UDP_LIMIT = 512  # bytes; larger answers are sent truncated (TC) so the client retries over TCP
_BIND_ATTEMPTS = 20


class Route53Resolver(BaseResolver):
    """dnslib resolver: one question in, the answer of the served zones out."""

    def __init__(self, lookup_lb: LoadBalancerLookup, accounts: Callable[[], Iterable[str]] | None = None,
                 rng: random.Random | None = None) -> None:
        self.lookup_lb = lookup_lb
        self.accounts = accounts
        self.rng = rng or random.Random()

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        qname = str(request.q.qname)
        qtype = QTYPE.get(request.q.qtype, str(request.q.qtype))
        reply = request.reply(ra=0, aa=1)
        try:
            zones = moto_zones(self.accounts() if self.accounts is not None else None)
            result = ZoneAnswerer(zones, self.lookup_lb, self.rng).answer(qname, qtype)
            reply.header.rcode = getattr(RCODE, result.rcode)
            reply.header.aa = int(result.authoritative)
            for rr in result.answer:
                reply.add_answer(rr)
            for rr in result.authority:
                reply.add_auth(rr)
            reply.pack()  # fail here, not in the handler, if a record cannot be encoded
        except Exception:
            _log.exception("DNS query %s %s failed; answering SERVFAIL", qname, qtype)
            reply = request.reply(ra=0, aa=0)
            reply.header.rcode = RCODE.SERVFAIL
        return reply


class _Handler(DNSHandler):
    udplen = _UDP_LIMIT


class _Logger(DNSLogger):
    """dnslib's request log to the logging module: errors as warnings, the rest at debug."""

    def __init__(self) -> None:
        super().__init__("request,reply,truncated,error", prefix=False, logf=lambda line: _log.debug("%s", line))

    def log_error(self, handler: Any, e: Exception) -> None:
        _log.warning("invalid DNS request from %s: %s", handler.client_address, e)


class DnsServer:
    """UDP and TCP DNS on one loopback port, answering in background threads."""

    def __init__(self, lookup_lb: LoadBalancerLookup, host: str = "127.0.0.1", port: int = 0,
                 accounts: Callable[[], Iterable[str]] | None = None) -> None:
        self.host = host
        self._requested_port = port
        self.resolver = Route53Resolver(lookup_lb, accounts)
        self._servers: list[DNSServer] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        """Bind UDP and TCP (port 0: one free port for both) and serve until stop()."""
        with self._lock:
            if self._servers:
                raise RuntimeError(f"DNS server already running on {self.host}:{self.port}")
            attempts = _BIND_ATTEMPTS if self._requested_port == 0 else 1
            for attempt in range(attempts):
                udp = self._make(self._requested_port, tcp=False)
                port = udp.server.server_address[1]
                try:
                    tcp = self._make(port, tcp=True)
                except OSError:
                    udp.server.server_close()
                    if attempt + 1 == attempts:
                        raise
                    continue
                self._servers = [udp, tcp]
                break
            for server in self._servers:
                thread = threading.Thread(target=server.server.serve_forever, kwargs={"poll_interval": 0.05},
                                          name=f"dns-{self.host}:{self.port}", daemon=True)
                thread.start()
            _log.info("DNS server on %s:%d (UDP and TCP)", self.host, self.port)

    def _make(self, port: int, tcp: bool) -> DNSServer:
        return DNSServer(self.resolver, address=self.host, port=port, tcp=tcp, logger=_Logger(), handler=_Handler)

    @property
    def port(self) -> int:
        """The bound port, the same for UDP and TCP."""
        if not self._servers:
            raise RuntimeError("DNS server not started: call start() first")
        port: int = self._servers[0].server.server_address[1]
        return port

    def stop(self) -> None:
        """Stop serving and release the port; safe to call twice."""
        with self._lock:
            servers, self._servers = self._servers, []
        for server in servers:
            instance: socketserver.BaseServer = server.server
            instance.shutdown()  # waits at most one poll interval
            instance.server_close()

    def __enter__(self) -> DnsServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class DnsQueryError(Exception):
    """A DNS query got no usable answer: timeout, REFUSED, NXDOMAIN, SERVFAIL..."""

    def __init__(self, name: str, server: tuple[str, int], problem: str) -> None:
        self.name = name
        self.server = server
        self.problem = problem
        super().__init__(f"DNS query for {name!r} to {server[0]}:{server[1]}: {problem}")


_HINTS = {
    "REFUSED": "the name is in no hosted zone the server serves and is no known load balancer",
    "NXDOMAIN": "its hosted zone has no record of that name",
    "SERVFAIL": "the server failed while answering; see its log",
}


def query_a(server: tuple[str, int], name: str, timeout: float = 2.0, *, tcp: bool = False) -> list[str]:
    """The A addresses for `name` from that DNS server (CNAME chains included).

    Empty when the name exists without A records. Retries over TCP when the UDP
    answer is truncated. Raises DnsQueryError on timeout and any error rcode.
    """
    host, port = server
    question = DNSRecord.question(name, "A")
    try:
        raw = question.send(host, port, tcp=tcp, timeout=timeout)
    except (socket.timeout, TimeoutError):
        raise DnsQueryError(name, server, f"no answer within {timeout}s; is a DNS server listening there?") from None
    except OSError as exc:
        raise DnsQueryError(name, server, f"{exc}; is a DNS server listening there?") from exc
    try:
        reply = DNSRecord.parse(raw)
    except DNSError as exc:
        raise DnsQueryError(name, server, f"unreadable answer: {exc}") from exc
    if reply.header.id != question.header.id:
        raise DnsQueryError(name, server, "answer does not match the question (id mismatch)")
    if reply.header.tc and not tcp:
        return query_a(server, name, timeout, tcp=True)
    rcode = RCODE.get(reply.header.rcode, str(reply.header.rcode))
    if rcode != "NOERROR":
        raise DnsQueryError(name, server, f"{rcode}: {_HINTS.get(rcode, 'error answer')}")
    return [str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A]
