"""Filters that check the stack's network plan with Python's ipaddress (no netaddr needed).

    {{ stack_vpc_cidr | stack_network_problems(stack_public_subnets, stack_private_subnets, stack_zones) }}

returns a list of problems, each naming the variable and what is wrong; empty when the
plan is sound: every block parses, lies inside the VPC, overlaps no other, and each zone
has one public and one private subnet. `stack_subnet_plan` lists the subnets to create.
"""

from __future__ import annotations

import ipaddress
from typing import Any

Network = ipaddress.IPv4Network


def _parse(name: str, value: Any, problems: list[str]) -> Network | None:
    try:
        return ipaddress.IPv4Network(str(value), strict=True)
    except ValueError as exc:
        problems.append(f"{name}={value} is not an IPv4 CIDR block ({exc})")
        return None


def stack_network_problems(vpc_cidr: str, public: list[str], private: list[str], zones: list[str]) -> list[str]:
    problems: list[str] = []
    vpc = _parse("stack_vpc_cidr", vpc_cidr, problems)
    if vpc is not None and not 16 <= vpc.prefixlen <= 28:
        problems.append(f"stack_vpc_cidr={vpc_cidr} has a /{vpc.prefixlen} prefix: AWS allows /16 to /28")
    subnets: list[tuple[str, Network]] = []
    for kind, blocks in (("stack_public_subnets", public), ("stack_private_subnets", private)):
        if len(blocks) != len(zones):
            problems.append(f"{kind} has {len(blocks)} block(s) for {len(zones)} zone(s): give one per zone")
        for index, block in enumerate(blocks):
            net = _parse(f"{kind}[{index}]", block, problems)
            if net is None:
                continue
            if vpc is not None and not net.subnet_of(vpc):
                problems.append(f"{kind}[{index}]={block} is not inside stack_vpc_cidr={vpc_cidr}")
            subnets.append((f"{kind}[{index}]={block}", net))
    for i, (name_a, net_a) in enumerate(subnets):
        for name_b, net_b in subnets[i + 1:]:
            if net_a.overlaps(net_b):
                problems.append(f"{name_a} overlaps {name_b}")
    return problems


def stack_is_cidr(value: Any) -> bool:
    """True for an IPv4 CIDR block with no host bits set (10.0.0.0/8, not 10.0.0.1/8)."""
    try:
        ipaddress.IPv4Network(str(value), strict=True)
    except ValueError:
        return False
    return "/" in str(value)


def stack_subnet_plan(zones: list[str], public: list[str], private: list[str]) -> list[dict[str, str]]:
    """One entry per subnet: tier (public/private), zone and CIDR, zone by zone."""
    return [{"tier": tier, "zone": zone, "cidr": cidr}
            for zone, pub, priv in zip(zones, public, private, strict=True)
            for tier, cidr in (("public", pub), ("private", priv))]


def stack_subnet_ids(results: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """tier -> zone -> subnet id, from ec2_vpc_subnet's looped results over stack_subnet_plan
    (a subnet still to be created in check mode has no id and is left out)."""
    ids: dict[str, dict[str, str]] = {"public": {}, "private": {}}
    for result in results:
        subnet_id = (result.get("subnet") or {}).get("id")
        if subnet_id:
            ids[result["item"]["tier"]][result["item"]["zone"]] = subnet_id
    return ids


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"stack_network_problems": stack_network_problems, "stack_subnet_plan": stack_subnet_plan,
                "stack_is_cidr": stack_is_cidr, "stack_subnet_ids": stack_subnet_ids}
