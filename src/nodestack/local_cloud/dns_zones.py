"""Route53 hosted zones as DNS answers: moto's Route53 backend read at query time.

This module decides what to answer; `nodestack.local_cloud.dns` puts it on the wire.

Routing policies follow "How Amazon Route 53 chooses records when health checking
is configured" (Route53 developer guide), with these simplifications:

- Health checks (`HealthCheckId`) are never run: a record carrying one is healthy.
  Only an alias with `EvaluateTargetHealth` can be unhealthy: to a load balancer,
  when its view says `healthy=False` (or the balancer is unknown); to another record
  of the served zones, when no record of that name and type is healthy.
- Latency records: the client is taken to be in `PREFERRED_REGION`; without a
  record there, the healthy record of the alphabetically first region answers.
- Geolocation records: the client's location is unknown, so only the default
  location (`CountryCode` "*") answers, as Route53 does for such clients; without
  one the name answers no records (NOERROR, empty).
- Multivalue records: up to eight healthy records, in random order.
- Delegations (NS records below a zone's apex) are answered as plain NS records,
  never as referrals. A CNAME whose target does not exist still answers NOERROR.
- When a public and a private zone have the same name, the private one answers,
  as the VPC resolver does for the instances that use it.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from dnslib import QTYPE, RR, A, DNSLabel
from moto.route53.models import route53_backends

_log = logging.getLogger(__name__)

ALIAS_TTL = 60  # Route53 answers alias records with a TTL of 60 seconds
PREFERRED_REGION = "us-east-1"  # where latency routing places every client
MAX_CHAIN = 8  # CNAME and alias hops followed before giving up
MULTIVALUE_LIMIT = 8  # Route53 returns at most eight multivalue records


@dataclass(frozen=True)
class LoadBalancerView:
    """What DNS needs to know about one load balancer of the local cloud."""

    address: str  # loopback IPv4 where the load balancer's HAProxy listens
    healthy: bool  # at least one registered target is healthy


LoadBalancerLookup = Callable[[str], "LoadBalancerView | None"]
"""By load balancer DNS name, normalised: lower case, no trailing dot, no "dualstack." prefix."""


def normalise_name(name: str) -> str:
    """Lower case, no trailing dot, Route53's octal escapes (\\052 for *) decoded."""
    name = re.sub(r"\\(\d{3})", lambda m: chr(int(m.group(1), 8)), name)
    return name.strip().rstrip(".").lower()


def normalise_lb_name(name: str) -> str:
    """A name as `LoadBalancerLookup` takes it: normalised, without "dualstack."."""
    name = normalise_name(name)
    return name.removeprefix("dualstack.")


def _in_zone(name: str, zone: str) -> bool:
    return name == zone or name.endswith("." + zone)


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


@dataclass(frozen=True)
class Alias:
    dns_name: str  # normalised
    evaluate_target_health: bool


@dataclass(frozen=True)
class Record:
    """One Route53 record set, with moto's loosely typed fields made regular."""

    name: str  # normalised
    type: str
    ttl: int
    values: tuple[str, ...]
    alias: Alias | None = None
    set_identifier: str | None = None
    weight: int | None = None
    failover: str | None = None
    region: str | None = None
    geo_location: dict[str, str] | None = None
    multi_value: bool = False
    health_check_id: str | None = None

    @property
    def policy(self) -> str:
        if self.set_identifier is None:
            return "simple"
        if self.weight is not None:
            return "weighted"
        if self.failover:
            return "failover"
        if self.region:
            return "latency"
        if self.geo_location:
            return "geolocation"
        if self.multi_value:
            return "multivalue"
        return "simple"

    @classmethod
    def from_moto(cls, rrset: Any) -> Record:
        values = tuple(v["Value"] if isinstance(v, dict) else str(v) for v in rrset.records or ())
        target = rrset.alias_target
        alias = None
        if target:
            alias = Alias(normalise_name(target.get("DNSName", "")), _truthy(target.get("EvaluateTargetHealth")))
        return cls(
            name=normalise_name(rrset.name),
            type=str(rrset.type).upper(),
            ttl=int(rrset.ttl) if rrset.ttl is not None else 300,
            values=values,
            alias=alias,
            set_identifier=rrset.set_identifier,
            weight=int(rrset.weight) if rrset.weight is not None else None,
            failover=str(rrset.failover).upper() if rrset.failover else None,
            region=rrset.region,
            geo_location=rrset.geo_location,
            multi_value=_truthy(rrset.multi_value_answer),
            health_check_id=rrset.health_check_id,
        )


@dataclass(frozen=True)
class Zone:
    name: str  # normalised
    private: bool
    records: tuple[Record, ...]

    def names(self) -> set[str]:
        return {r.name for r in self.records}

    def soa(self) -> RR | None:
        for record in self.records:
            if record.type == "SOA" and record.name == self.name and record.values:
                rr = _parse_rr(self.name + ".", record.ttl, "SOA", record.values[0])
                if rr is not None:
                    rr.ttl = min(record.ttl, rr.rdata.times[-1])  # negative caching TTL
                return rr
        return None


def moto_zones(accounts: Iterable[str] | None) -> list[Zone]:
    """Every hosted zone of those accounts (default: all) as moto holds it now.

    Reads without creating: asking moto's BackendDict for an account it lacks
    would create an empty backend for it.
    """
    account_ids = list(dict.keys(route53_backends)) if accounts is None else list(accounts)
    zones = []
    for account_id in account_ids:
        by_partition = dict.get(route53_backends, account_id)
        if by_partition is None:
            continue
        for backend in list(dict.values(by_partition)):
            for fake in list(backend.zones.values()):
                name = normalise_name(fake.name)
                records = []
                for rrset in list(fake.rrsets):
                    try:
                        record = Record.from_moto(rrset)
                    except (TypeError, ValueError, AttributeError):
                        _log.warning("skipping unreadable record set %r in zone %s", vars(rrset), name)
                        continue
                    if _in_zone(record.name, name):
                        records.append(record)
                zones.append(Zone(name, bool(fake.private_zone), tuple(records)))
    return zones


def _parse_rr(owner: str, ttl: int, rtype: str, value: str) -> RR | None:
    """One resource record from a Route53 value (zone file syntax), or None if dnslib cannot."""
    parse_type = "TXT" if rtype == "SPF" else rtype
    try:
        (rr,) = RR.fromZone(f"placeholder. {ttl} IN {parse_type} {value}")
    except Exception:  # dnslib raises many kinds on bad input
        _log.warning("cannot answer %s %s value %r: not parseable", owner, rtype, value)
        return None
    rr.rname = DNSLabel(owner)
    if rtype == "SPF":
        rr.rtype = QTYPE.SPF
    return rr


@dataclass
class Answer:
    rcode: str  # NOERROR, NXDOMAIN or REFUSED
    answer: list[RR]
    authority: list[RR]
    authoritative: bool = True


class ZoneAnswerer:
    """Answers one question from a snapshot of the zones and the load balancers."""

    def __init__(self, zones: Sequence[Zone], lookup_lb: LoadBalancerLookup, rng: random.Random) -> None:
        self.zones = zones
        self.lookup_lb = lookup_lb
        self.rng = rng

    def zone_for(self, name: str) -> Zone | None:
        """The served zone with the longest name that contains `name` (private before public)."""
        candidates = [z for z in self.zones if _in_zone(name, z.name)]
        if not candidates:
            return None
        return max(candidates, key=lambda z: (len(z.name), z.private))

    def answer(self, qname: str, qtype: str) -> Answer:
        """The response to one question; `qname` is kept as asked for the owner names."""
        name = normalise_name(qname)
        lb_rrs = self._load_balancer(qname, name, qtype)
        if lb_rrs is not None:
            return Answer("NOERROR", lb_rrs, [])
        zone = self.zone_for(name)
        if zone is None:
            return Answer("REFUSED", [], [], authoritative=False)
        rcode, rrs = self._in_zone(zone, qname, name, qtype, depth=0)
        soa = zone.soa()
        authority = [soa] if not rrs and soa is not None else []
        return Answer(rcode, rrs, authority)

    def _load_balancer(self, owner: str, name: str, qtype: str) -> list[RR] | None:
        view = self.lookup_lb(normalise_lb_name(name))
        if view is None:
            return None
        if qtype in ("A", "ANY"):
            return [RR(owner, QTYPE.A, ttl=ALIAS_TTL, rdata=A(view.address))]
        return []

    def _records_at(self, zone: Zone, name: str) -> list[Record] | None:
        """Records owning `name`, through a wildcard if need be; None if the name does not exist."""
        names = zone.names()
        own = [r for r in zone.records if r.name == name]
        if own:
            return own
        if any(n.endswith("." + name) for n in names):
            return []  # empty non-terminal: exists, holds nothing
        encloser = name
        while encloser != zone.name:
            encloser = encloser.split(".", 1)[1]
            if encloser in names or encloser == zone.name or any(n.endswith("." + encloser) for n in names):
                wildcard = "*." + encloser
                return [r for r in zone.records if r.name == wildcard] or None
        return None

    def _in_zone(self, zone: Zone, owner: str, name: str, qtype: str, depth: int) -> tuple[str, list[RR]]:
        records = self._records_at(zone, name)
        if records is None:
            return "NXDOMAIN", []
        by_type: dict[str, list[Record]] = {}
        for record in records:
            by_type.setdefault(record.type, []).append(record)
        if qtype == "ANY":
            return "NOERROR", [rr for group in by_type.values() for rr in self._select(group, owner, depth)]
        if qtype in by_type:
            return "NOERROR", self._select(by_type[qtype], owner, depth)
        if "CNAME" in by_type:
            rrs = self._select(by_type["CNAME"], owner, depth)
            if depth < MAX_CHAIN:
                for rr in list(rrs):
                    if rr.rtype == QTYPE.CNAME:
                        rrs += self._chase(str(rr.rdata.label), qtype, depth + 1)
            return "NOERROR", rrs
        return "NOERROR", []

    def _chase(self, target: str, qtype: str, depth: int) -> list[RR]:
        """What a resolver would append for a CNAME's target."""
        name = normalise_name(target)
        lb_rrs = self._load_balancer(target, name, qtype)
        if lb_rrs is not None:
            return lb_rrs
        zone = self.zone_for(name)
        if zone is None:
            return []
        return self._in_zone(zone, target, name, qtype, depth)[1]

    # Routing policies ------------------------------------------------------------

    def _select(self, group: list[Record], owner: str, depth: int) -> list[RR]:
        """The records of one name and type that answer this query, by routing policy."""
        policy = group[0].policy
        members = [r for r in group if r.policy == policy]
        chosen: list[Record]
        if policy == "weighted":
            chosen = self._weighted(members, depth)
        elif policy == "failover":
            chosen = self._failover(members, depth)
        elif policy == "latency":
            pool = self._healthy_or_all(members, depth)
            local = [r for r in pool if r.region == PREFERRED_REGION]
            chosen = (local or sorted(pool, key=lambda r: str(r.region)))[:1]
        elif policy == "geolocation":
            chosen = [r for r in members if (r.geo_location or {}).get("CountryCode") == "*"][:1]
        elif policy == "multivalue":
            pool = list(self._healthy_or_all(members, depth))
            self.rng.shuffle(pool)
            chosen = pool[:MULTIVALUE_LIMIT]
        else:
            chosen = members
        return [rr for record in chosen for rr in self._record_rrs(record, owner, depth)]

    def _weighted(self, members: list[Record], depth: int) -> list[Record]:
        healthy = [r for r in members if self._healthy(r, depth)] or members  # none healthy: all are
        nonzero = [r for r in healthy if (r.weight or 0) > 0]
        if nonzero:
            return self.rng.choices(nonzero, weights=[r.weight or 0 for r in nonzero])
        return [self.rng.choice(healthy)]  # only weight 0 left: equal chances

    def _failover(self, members: list[Record], depth: int) -> list[Record]:
        ordered = sorted(members, key=lambda r: r.failover != "PRIMARY")
        for record in ordered:
            if self._healthy(record, depth):
                return [record]
        return ordered[:1]  # both unhealthy: Route53 answers the primary

    def _healthy_or_all(self, members: list[Record], depth: int) -> list[Record]:
        return [r for r in members if self._healthy(r, depth)] or members

    def _healthy(self, record: Record, depth: int) -> bool:
        """Route53's view of one record's health.

        A record with a health check id counts as healthy: health checks are not run
        here. An alias with EvaluateTargetHealth is as healthy as its load balancer,
        or, for an alias to a record, as the best record of that name and type.
        """
        if record.alias is None or not record.alias.evaluate_target_health:
            return True
        view = self.lookup_lb(normalise_lb_name(record.alias.dns_name))
        if view is not None:
            return view.healthy
        zone = self.zone_for(record.alias.dns_name)
        if zone is None or depth >= MAX_CHAIN:
            return False
        targets = [r for r in self._records_at(zone, record.alias.dns_name) or [] if r.type == record.type]
        return any(self._healthy(r, depth + 1) for r in targets)

    def _record_rrs(self, record: Record, owner: str, depth: int) -> list[RR]:
        if record.alias is None:
            rrs = [_parse_rr(owner, record.ttl, record.type, value) for value in record.values]
            return [rr for rr in rrs if rr is not None]
        target = record.alias.dns_name
        view = self.lookup_lb(normalise_lb_name(target))
        if view is not None:
            if record.type == "A":
                return [RR(owner, QTYPE.A, ttl=ALIAS_TTL, rdata=A(view.address))]
            return []  # the local load balancers have no IPv6 address
        zone = self.zone_for(target)
        if zone is None or depth >= MAX_CHAIN:
            _log.info("alias %s -> %s: target is no known load balancer nor served record", owner, target)
            return []
        targets = [r for r in self._records_at(zone, target) or [] if r.type == record.type]
        if not targets:
            return []
        rrs = self._select(targets, owner, depth + 1)
        return rrs
