"""Route53 alias records matched to load balancers.

    {{ records | stack_alias_records(lb_dns_names) }}          the records aliasing one of them
    {{ records | stack_alias_records(lb_dns_names, false) }}   the others
    {{ records | stack_aliased_lbs(lbs) }}                     the load balancers (dns_name) they alias
    {{ record_sets | stack_app_records(name) }}               the A alias records of this name
    {{ records | stack_records_of(identifiers) }}              the records of these set identifiers
                                                               ('' for a record without one)
    {{ cert_names | stack_names_uncovered(names) }}            the names no certificate name covers

Route53 keeps an alias target as lower case with a final dot and, for an application load
balancer, may give it a "dualstack." prefix; the load balancer APIs give neither.
"""

from __future__ import annotations

from typing import Any


def _host(name: str) -> str:
    host = name.lower().rstrip(".")
    return host.removeprefix("dualstack.")


def stack_alias_records(records: list[dict[str, Any]], lb_dns_names: list[str],
                        aliasing: bool = True) -> list[dict[str, Any]]:
    targets = {_host(name) for name in lb_dns_names}
    return [record for record in records
            if (_host((record.get("AliasTarget") or {}).get("DNSName", "")) in targets) == aliasing]


def stack_aliased_lbs(records: list[dict[str, Any]], lbs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    targets = {_host((record.get("AliasTarget") or {}).get("DNSName", "")) for record in records}
    return [lb for lb in lbs if _host(lb.get("dns_name", "")) in targets]


def stack_app_records(record_sets: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """The app's alias records, whatever their set identifiers (one per colour or weight)."""
    wanted = name.lower().rstrip(".") + "."
    return [record for record in record_sets
            if record.get("Name", "").lower() == wanted and record.get("Type") == "A" and "AliasTarget" in record]


def stack_records_of(records: list[dict[str, Any]], identifiers: list[str]) -> list[dict[str, Any]]:
    return [record for record in records if record.get("SetIdentifier", "") in identifiers]


def _covers(cert_name: str, name: str) -> bool:
    """A certificate name covers a host name as TLS clients match it (RFC 6125): exactly, or a
    wildcard standing for one whole left-most label (*.example.com: a.example.com, not
    example.com nor a.b.example.com)."""
    pattern, host = cert_name.lower().rstrip("."), name.lower().rstrip(".")
    if not pattern.startswith("*."):
        return pattern == host
    label, _, rest = host.partition(".")
    return bool(label) and rest == pattern[2:]


def stack_names_uncovered(cert_names: list[str], names: list[str]) -> list[str]:
    return [name for name in names if not any(_covers(cert_name, name) for cert_name in cert_names)]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"stack_alias_records": stack_alias_records, "stack_aliased_lbs": stack_aliased_lbs,
                "stack_app_records": stack_app_records, "stack_records_of": stack_records_of,
                "stack_names_uncovered": stack_names_uncovered}
