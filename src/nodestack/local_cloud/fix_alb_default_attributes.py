"""elbv2 DescribeLoadBalancerAttributes of a new application load balancer: moto 5.2 returns
only five attributes, leaving out access_logs.s3.enabled and
routing.http.drop_invalid_header_fields.enabled, so amazon.aws.elb_application_lb fails with
a KeyError when it is given either (it compares them with the current values).

AWS: an application load balancer has every attribute from its creation, with the defaults
the ELB API reference documents (LoadBalancerAttribute); modifying one keeps the others.
"""

from __future__ import annotations

from typing import Any

from moto.elbv2.models import FakeLoadBalancer

# AWS's documented defaults for an application load balancer (ELB API reference, LoadBalancerAttribute).
ALB_DEFAULTS = {
    "access_logs.s3.enabled": "false",
    "access_logs.s3.bucket": "",
    "access_logs.s3.prefix": "",
    "connection_logs.s3.enabled": "false",
    "connection_logs.s3.bucket": "",
    "connection_logs.s3.prefix": "",
    "client_keep_alive.seconds": "3600",
    "deletion_protection.enabled": "false",
    "idle_timeout.timeout_seconds": "60",
    "load_balancing.cross_zone.enabled": "true",
    "routing.http.desync_mitigation_mode": "defensive",
    "routing.http.drop_invalid_header_fields.enabled": "false",
    "routing.http.preserve_host_header.enabled": "false",
    "routing.http.x_amzn_tls_version_and_cipher_suite.enabled": "false",
    "routing.http.xff_client_port.enabled": "false",
    "routing.http.xff_header_processing.mode": "append",
    "routing.http2.enabled": "true",
    "waf.fail_open.enabled": "false",
    "zonal_shift.config.enabled": "false",
}


def apply() -> None:
    original = FakeLoadBalancer.__init__

    def init(self: FakeLoadBalancer, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if self.type == "application":
            self.attrs = {**ALB_DEFAULTS, **self.attrs, "load_balancing.cross_zone.enabled": "true"}

    FakeLoadBalancer.__init__ = init  # type: ignore[method-assign]
