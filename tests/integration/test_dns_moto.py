"""DNS answers what a client changed through moto's server, as the endpoint process runs it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.request import Request, urlopen

import boto3
import pytest
from moto.moto_server.threaded_moto_server import ThreadedMotoServer

from nodestack.local_cloud.dns import DnsQueryError, DnsServer, LoadBalancerView, query_a

BLUE_LB = "nodeapp-blue-111.us-east-1.elb.amazonaws.com"
GREEN_LB = "nodeapp-green-222.us-east-1.elb.amazonaws.com"


@pytest.fixture
def route53(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A Route53 client of a moto server running in this process, on a free loopback port."""
    for var, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(var, value)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    url = f"http://{host}:{port}"
    try:
        yield boto3.client("route53", region_name="us-east-1", endpoint_url=url)
    finally:
        urlopen(Request(f"{url}/moto-api/reset", method="POST"), timeout=10).close()  # as mock_aws does on exit
        moto.stop()


def test_weighted_aliases_sent_through_the_api_answer_by_weight_and_health(route53: Any) -> None:
    zone_id = route53.create_hosted_zone(Name="stack.test", CallerReference="dns-moto")["HostedZone"]["Id"]

    def weighted(identifier: str, lb: str, weight: int) -> dict[str, Any]:
        target = {"HostedZoneId": "Z35SXDOTRQ7X7K", "DNSName": f"dualstack.{lb}.", "EvaluateTargetHealth": True}
        return {"Action": "CREATE", "ResourceRecordSet": {"Name": "app.stack.test", "Type": "A", "Weight": weight,
                                                           "SetIdentifier": identifier, "AliasTarget": target}}

    route53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": [
        weighted("app-blue", BLUE_LB, 1), weighted("app-green", GREEN_LB, 3)]})
    lbs = {BLUE_LB: LoadBalancerView("127.0.0.11", True), GREEN_LB: LoadBalancerView("127.0.0.12", True)}
    with DnsServer(lbs.get) as dns:
        server = ("127.0.0.1", dns.port)
        seen = Counter(addr for _ in range(400) for addr in query_a(server, "app.stack.test"))
        assert 0.65 <= seen["127.0.0.12"] / 400 <= 0.85, seen
        lbs[GREEN_LB] = LoadBalancerView("127.0.0.12", healthy=False)
        assert {addr for _ in range(50) for addr in query_a(server, "app.stack.test")} == {"127.0.0.11"}
        with pytest.raises(DnsQueryError, match="NXDOMAIN"):
            query_a(server, "www.stack.test")
