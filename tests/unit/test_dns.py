"""The DNS server answers moto's Route53 zones the way Route53 would, over UDP and TCP."""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from dnslib import QTYPE, RCODE, DNSRecord

from nodestack.local_cloud.dns import DnsQueryError, DnsServer, LoadBalancerView, query_a

BLUE_LB = "nodeapp-blue-111.us-east-1.elb.amazonaws.com"
GREEN_LB = "nodeapp-green-222.us-east-1.elb.amazonaws.com"
ELB_ZONE_ID = "Z35SXDOTRQ7X7K"


@dataclass
class Cloud:
    """A mocked Route53, the load balancers DNS knows, and the DNS server answering both."""

    route53: Any
    lbs: dict[str, LoadBalancerView]
    server: tuple[str, int] = ("127.0.0.1", 0)
    zones: dict[str, str] = field(default_factory=dict)

    def zone(self, name: str) -> str:
        zone_id: str = self.route53.create_hosted_zone(Name=name, CallerReference=name)["HostedZone"]["Id"]
        self.zones[name] = zone_id
        return zone_id

    def change(self, zone: str, *rrsets: dict[str, Any], action: str = "UPSERT") -> None:
        changes = [{"Action": action, "ResourceRecordSet": rrset} for rrset in rrsets]
        self.route53.change_resource_record_sets(HostedZoneId=self.zones[zone], ChangeBatch={"Changes": changes})

    def ask(self, name: str, qtype: str = "A", tcp: bool = False) -> DNSRecord:
        raw = DNSRecord.question(name, qtype).send(self.server[0], self.server[1], tcp=tcp, timeout=2)
        return DNSRecord.parse(raw)

    def a(self, name: str, tcp: bool = False) -> list[str]:
        return query_a(self.server, name, tcp=tcp)


def plain(name: str, rtype: str, *values: str, ttl: int = 300) -> dict[str, Any]:
    return {"Name": name, "Type": rtype, "TTL": ttl, "ResourceRecords": [{"Value": v} for v in values]}


def alias(name: str, target: str, evaluate: bool = True, **routing: Any) -> dict[str, Any]:
    target_spec = {"HostedZoneId": ELB_ZONE_ID, "DNSName": target, "EvaluateTargetHealth": evaluate}
    return {"Name": name, "Type": "A", "AliasTarget": target_spec, **routing}


@pytest.fixture
def cloud(moto_in_process: None) -> Iterator[Cloud]:
    lbs = {BLUE_LB: LoadBalancerView("127.0.0.11", True), GREEN_LB: LoadBalancerView("127.0.0.12", True)}
    cloud = Cloud(boto3.client("route53", region_name="us-east-1"), lbs)
    cloud.zone("example.com")
    with DnsServer(lambda name: lbs.get(name)) as server:
        cloud.server = ("127.0.0.1", server.port)
        yield cloud


def answers(reply: DNSRecord) -> list[tuple[str, str, int, str]]:
    return [(str(rr.rname), QTYPE[rr.rtype], rr.ttl, str(rr.rdata)) for rr in reply.rr]


# Plain records -----------------------------------------------------------------


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_plain_a_record_answers_its_values_and_ttl_on_udp_and_tcp(cloud: Cloud, tcp: bool) -> None:
    cloud.change("example.com", plain("www.example.com", "A", "127.0.0.5", "127.0.0.6", ttl=30))
    reply = cloud.ask("www.example.com", tcp=tcp)
    assert reply.header.rcode == RCODE.NOERROR and reply.header.aa == 1
    assert answers(reply) == [("www.example.com.", "A", 30, "127.0.0.5"), ("www.example.com.", "A", 30, "127.0.0.6")]
    assert cloud.a("WWW.Example.COM.", tcp=tcp) == ["127.0.0.5", "127.0.0.6"]


def test_other_record_types_answer_in_their_own_syntax(cloud: Cloud) -> None:
    cloud.change("example.com", plain("example.com", "MX", "10 mail.example.com"),
                 plain("example.com", "TXT", '"v=spf1 -all"', '"hello world" "two"'),
                 plain("www.example.com", "AAAA", "::1"))
    assert [a[3] for a in answers(cloud.ask("example.com", "MX"))] == ["10 mail.example.com."]
    assert [rr.rdata.data for rr in cloud.ask("example.com", "TXT").rr] == [[b"v=spf1 -all"], [b"hello world", b"two"]]
    assert [a[3] for a in answers(cloud.ask("www.example.com", "AAAA"))] == ["::1"]
    assert QTYPE[cloud.ask("example.com", "SOA").rr[0].rtype] == "SOA"
    assert len(cloud.ask("example.com", "NS").rr) == 4


def test_spf_answers_and_a_value_dns_cannot_encode_is_left_out(cloud: Cloud) -> None:
    cloud.change("example.com", plain("example.com", "SPF", '"v=spf1 -all"'),
                 plain("bad.example.com", "A", "not-an-address"))
    spf = [(QTYPE[rr.rtype], rr.rdata.data) for rr in cloud.ask("example.com", "SPF").rr]
    assert spf == [("SPF", b"\x0bv=spf1 -all")]  # TXT's wire format; dnslib's client reads SPF as raw data
    assert cloud.a("bad.example.com") == []


def test_records_added_and_removed_while_running_answer_at_once(cloud: Cloud) -> None:
    with pytest.raises(DnsQueryError, match="NXDOMAIN"):
        cloud.a("late.example.com")
    cloud.change("example.com", plain("late.example.com", "A", "127.0.0.7"))
    assert cloud.a("late.example.com") == ["127.0.0.7"]
    cloud.change("example.com", plain("late.example.com", "A", "127.0.0.7"), action="DELETE")
    assert cloud.ask("late.example.com").header.rcode == RCODE.NXDOMAIN


def test_cname_chain_appends_the_final_a_records(cloud: Cloud) -> None:
    cloud.change("example.com", plain("www.example.com", "A", "127.0.0.5"),
                 plain("web.example.com", "CNAME", "www.example.com"),
                 plain("shop.example.com", "CNAME", "web.example.com", ttl=60),
                 plain("lb.example.com", "CNAME", BLUE_LB))
    assert answers(cloud.ask("shop.example.com")) == [
        ("shop.example.com.", "CNAME", 60, "web.example.com."),
        ("web.example.com.", "CNAME", 300, "www.example.com."),
        ("www.example.com.", "A", 300, "127.0.0.5"),
    ]
    assert cloud.a("shop.example.com") == ["127.0.0.5"]
    assert cloud.a("lb.example.com") == ["127.0.0.11"]
    assert answers(cloud.ask("shop.example.com", "CNAME")) == [("shop.example.com.", "CNAME", 60, "web.example.com.")]


def test_wildcard_answers_names_that_do_not_exist(cloud: Cloud) -> None:
    cloud.change("example.com", plain("*.dev.example.com", "A", "127.0.0.8"),
                 plain("exact.dev.example.com", "TXT", '"here"'))
    assert answers(cloud.ask("a.b.dev.example.com")) == [("a.b.dev.example.com.", "A", 300, "127.0.0.8")]
    exact = cloud.ask("exact.dev.example.com")  # exists: no wildcard for it
    assert exact.header.rcode == RCODE.NOERROR and not exact.rr


# Aliases and load balancers ----------------------------------------------------


def test_alias_to_a_load_balancer_answers_its_address_with_ttl_60(cloud: Cloud) -> None:
    cloud.change("example.com", alias("app.example.com", f"dualstack.{BLUE_LB.upper()}."))
    assert answers(cloud.ask("app.example.com")) == [("app.example.com.", "A", 60, "127.0.0.11")]


def test_alias_to_a_record_of_the_zone_answers_that_record(cloud: Cloud) -> None:
    cloud.change("example.com", plain("www.example.com", "A", "127.0.0.5", ttl=45),
                 alias("example.com", "www.example.com", evaluate=False))
    assert answers(cloud.ask("example.com")) == [("example.com.", "A", 45, "127.0.0.5")]


def test_load_balancer_names_answer_their_address(cloud: Cloud) -> None:
    assert cloud.a(BLUE_LB) == ["127.0.0.11"]
    assert cloud.a(f"dualstack.{GREEN_LB.upper()}.") == ["127.0.0.12"]
    with pytest.raises(DnsQueryError, match="REFUSED"):
        cloud.a("unknown-333.us-east-1.elb.amazonaws.com")


def test_lone_alias_to_an_unhealthy_load_balancer_still_answers(cloud: Cloud) -> None:
    cloud.change("example.com", alias("app.example.com", BLUE_LB))
    cloud.lbs[BLUE_LB] = LoadBalancerView("127.0.0.11", healthy=False)
    assert cloud.a("app.example.com") == ["127.0.0.11"]


# Negative answers and zone choice ------------------------------------------------


def test_nxdomain_nodata_and_refused_are_told_apart(cloud: Cloud) -> None:
    cloud.change("example.com", plain("www.example.com", "A", "127.0.0.5"))
    nxdomain = cloud.ask("missing.example.com")
    assert nxdomain.header.rcode == RCODE.NXDOMAIN and not nxdomain.rr
    assert [(str(rr.rname), QTYPE[rr.rtype]) for rr in nxdomain.auth] == [("example.com.", "SOA")]
    nodata = cloud.ask("www.example.com", "AAAA")
    assert nodata.header.rcode == RCODE.NOERROR and not nodata.rr
    assert [QTYPE[rr.rtype] for rr in nodata.auth] == ["SOA"]
    refused = cloud.ask("www.example.org")
    assert refused.header.rcode == RCODE.REFUSED and not refused.rr and not refused.auth
    with pytest.raises(DnsQueryError, match=r"'missing.example.com' to 127\.0\.0\.1:\d+: NXDOMAIN"):
        cloud.a("missing.example.com")
    with pytest.raises(DnsQueryError, match="REFUSED: the name is in no hosted zone"):
        cloud.a("www.example.org")
    assert cloud.a("www.example.com") == ["127.0.0.5"]


def test_the_longest_matching_zone_answers(cloud: Cloud) -> None:
    cloud.zone("sub.example.com")
    cloud.change("example.com", plain("www.sub.example.com", "A", "127.0.0.1"))
    cloud.change("sub.example.com", plain("www.sub.example.com", "A", "127.0.0.2"))
    assert cloud.a("www.sub.example.com") == ["127.0.0.2"]
    missing = cloud.ask("nope.sub.example.com")
    assert missing.header.rcode == RCODE.NXDOMAIN
    assert str(missing.auth[0].rname) == "sub.example.com."


def test_only_the_given_accounts_are_served(cloud: Cloud) -> None:
    with DnsServer(lambda name: None, accounts=lambda: ["111111111111"]) as other:
        assert DNSRecord.parse(DNSRecord.question("example.com", "SOA").send(
            "127.0.0.1", other.port, timeout=2)).header.rcode == RCODE.REFUSED


def test_large_answers_are_truncated_on_udp_and_complete_on_tcp(cloud: Cloud) -> None:
    addresses = [f"127.0.1.{i}" for i in range(1, 61)]
    cloud.change("example.com", plain("many.example.com", "A", *addresses))
    assert cloud.ask("many.example.com").header.tc == 1
    assert cloud.a("many.example.com") == addresses  # query_a retries over TCP


def test_an_error_while_answering_is_servfail_and_the_server_lives_on(cloud: Cloud) -> None:
    def broken(name: str) -> LoadBalancerView | None:
        raise RuntimeError("lookup broke")

    with DnsServer(broken) as server:
        address = ("127.0.0.1", server.port)
        for _ in range(2):
            with pytest.raises(DnsQueryError, match="SERVFAIL"):
                query_a(address, "www.example.com")


def test_query_a_times_out_with_a_clear_error() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        with pytest.raises(DnsQueryError, match=rf"'x.example.com' to 127.0.0.1:{port}: no answer within 0.2s"):
            query_a(("127.0.0.1", port), "x.example.com", timeout=0.2)


# Routing policies ----------------------------------------------------------------


def weighted_pair(blue: int, green: int, evaluate: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    return (alias("app.example.com", BLUE_LB, evaluate, SetIdentifier="app-blue", Weight=blue),
            alias("app.example.com", GREEN_LB, evaluate, SetIdentifier="app-green", Weight=green))


def shares(cloud: Cloud, queries: int) -> Counter[str]:
    seen: Counter[str] = Counter()
    for _ in range(queries):
        (address,) = cloud.a("app.example.com")
        seen["blue" if address == "127.0.0.11" else "green"] += 1
    return seen


def test_weighted_records_share_the_answers_by_weight(cloud: Cloud) -> None:
    cloud.change("example.com", *weighted_pair(1, 3))
    seen = shares(cloud, 1000)
    assert 0.70 <= seen["green"] / 1000 <= 0.80, seen


def test_weighted_records_skip_an_unhealthy_load_balancer(cloud: Cloud) -> None:
    cloud.change("example.com", *weighted_pair(1, 3))
    cloud.lbs[GREEN_LB] = LoadBalancerView("127.0.0.12", healthy=False)
    assert shares(cloud, 100) == Counter(blue=100)
    cloud.lbs[BLUE_LB] = LoadBalancerView("127.0.0.11", healthy=False)  # all unhealthy: all count as healthy
    assert set(shares(cloud, 200)) == {"blue", "green"}


def test_weighted_records_ignore_health_without_evaluate_target_health(cloud: Cloud) -> None:
    cloud.change("example.com", *weighted_pair(1, 3, evaluate=False))
    cloud.lbs[GREEN_LB] = LoadBalancerView("127.0.0.12", healthy=False)
    assert set(shares(cloud, 200)) == {"blue", "green"}


def test_weight_zero_answers_only_when_every_nonzero_record_is_unhealthy(cloud: Cloud) -> None:
    cloud.change("example.com", *weighted_pair(0, 1))
    assert shares(cloud, 100) == Counter(green=100)
    cloud.lbs[GREEN_LB] = LoadBalancerView("127.0.0.12", healthy=False)
    assert shares(cloud, 100) == Counter(blue=100)
    cloud.lbs[BLUE_LB] = LoadBalancerView("127.0.0.11", healthy=False)  # none healthy: the weights rule again
    assert shares(cloud, 100) == Counter(green=100)


def test_all_weights_zero_share_the_answers_equally(cloud: Cloud) -> None:
    cloud.change("example.com", *weighted_pair(0, 0))
    seen = shares(cloud, 200)
    assert seen["blue"] > 50 and seen["green"] > 50, seen


def test_failover_answers_the_primary_while_healthy_then_the_secondary(cloud: Cloud) -> None:
    cloud.change("example.com",
                 alias("app.example.com", BLUE_LB, SetIdentifier="app-primary", Failover="PRIMARY"),
                 plain("app.example.com", "A", "127.0.0.99", ttl=60) | {"SetIdentifier": "app-secondary",
                                                                         "Failover": "SECONDARY"})
    assert cloud.a("app.example.com") == ["127.0.0.11"]
    cloud.lbs[BLUE_LB] = LoadBalancerView("127.0.0.11", healthy=False)
    assert cloud.a("app.example.com") == ["127.0.0.99"]


def test_failover_alias_to_a_record_follows_that_records_health(cloud: Cloud) -> None:
    cloud.change("example.com",
                 alias("live.example.com", GREEN_LB),
                 alias("app.example.com", "live.example.com", SetIdentifier="app-primary", Failover="PRIMARY"),
                 alias("app.example.com", BLUE_LB, SetIdentifier="app-secondary", Failover="SECONDARY"))
    assert cloud.a("app.example.com") == ["127.0.0.12"]
    cloud.lbs[GREEN_LB] = LoadBalancerView("127.0.0.12", healthy=False)
    assert cloud.a("app.example.com") == ["127.0.0.11"]


def test_multivalue_answers_every_healthy_record(cloud: Cloud) -> None:
    cloud.change("example.com", *(plain("mv.example.com", "A", f"127.0.0.{i}") | {
        "SetIdentifier": f"mv-{i}", "MultiValueAnswer": True} for i in (1, 2, 3)))
    assert sorted(cloud.a("mv.example.com")) == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]


def test_geolocation_answers_the_default_location(cloud: Cloud) -> None:
    cloud.change("example.com",
                 plain("geo.example.com", "A", "127.0.0.1") | {"SetIdentifier": "geo-eu",
                                                               "GeoLocation": {"ContinentCode": "EU"}},
                 plain("geo.example.com", "A", "127.0.0.2") | {"SetIdentifier": "geo-any",
                                                               "GeoLocation": {"CountryCode": "*"}})
    assert cloud.a("geo.example.com") == ["127.0.0.2"]
