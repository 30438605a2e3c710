"""The stack's filters (plugins/filter): which stack_* names are settings, the naming map's
patterns filled across releases, the network layer's subnet ids by tier and zone, and the
alias records aimed at load balancers, and what teardown may take as the stack's own."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from tests.conftest import REPO


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO / "plugins" / "filter" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


settings, network, dns = _load("stack_settings"), _load("stack_network"), _load("stack_dns")
owned = _load("stack_owned")


def test_every_stack_roles_spec_and_defaults_are_settings() -> None:
    known = settings.stack_settings(str(REPO / "roles"))
    layers = [p.parents[1].name for p in (REPO / "roles").glob("stack_*/meta/argument_specs.yml")]
    assert len(layers) >= 6
    assert {f"{layer}_state" for layer in layers} <= known
    assert {"stack_asg_max_size", "stack_app_name", "stack_tags", "stack_release_name"} <= known
    assert not any("__" in name for name in known), "the stack's own names are not settings"


def test_a_misspelt_setting_is_named_with_the_nearest_and_the_stacks_own_names_pass() -> None:
    names = ["stack_asg_max_szie", "stack_frobnicate", "stack_asg_min_size", "stack__deploy_ami",
             "stack_network__vpc", "stack_compute_state"]
    assert settings.stack_unknown_settings(names, str(REPO / "roles")) == [
        "stack_asg_max_szie (did you mean stack_asg_max_size?)", "stack_frobnicate"]


def test_a_layer_state_must_belong_to_a_layer(tmp_path: Path) -> None:
    role = tmp_path / "stack_extra" / "meta"
    role.mkdir(parents=True)
    (role / "argument_specs.yml").write_text(yaml.safe_dump(
        {"argument_specs": {"main": {"options": {"stack_extra_state": {"type": "str"}}}}}))
    assert settings.stack_unknown_settings(["stack_extra_state", "stack_other_state"], str(tmp_path)) == [
        "stack_other_state (did you mean stack_extra_state?)"]


def test_naming_map_patterns_are_filled_for_each_release() -> None:
    releases = ["app-dev", "app-dev-blue"]
    assert settings.stack_format_each(releases, "%s-app") == ["app-dev-app", "app-dev-blue-app"]
    pairs = [[r, level] for r in releases for level in ("high", "low")]  # Jinja's product, as lists
    assert settings.stack_format_each(pairs, "%s-cpu-%s") == [
        "app-dev-cpu-high", "app-dev-cpu-low", "app-dev-blue-cpu-high", "app-dev-blue-cpu-low"]


def test_subnet_ids_by_tier_and_zone_leave_out_what_check_mode_has_not_made() -> None:
    results = [
        {"item": {"tier": "public", "zone": "z-a"}, "subnet": {"id": "subnet-1"}},
        {"item": {"tier": "private", "zone": "z-a"}, "subnet": {"id": "subnet-2"}},
        {"item": {"tier": "public", "zone": "z-b"}, "subnet": {"id": "subnet-3"}},
        {"item": {"tier": "private", "zone": "z-b"}, "changed": True},  # check mode: to be created
    ]
    assert network.stack_subnet_ids(results) == {"public": {"z-a": "subnet-1", "z-b": "subnet-3"},
                                                 "private": {"z-a": "subnet-2"}}


def test_alias_records_match_load_balancers_as_route53_spells_them() -> None:
    ours = {"Name": "app.example.com.",
            "AliasTarget": {"DNSName": "dualstack.Nodeapp-Dev-1.us-east-1.elb.amazonaws.com."}}
    theirs = {"Name": "app.example.com.", "SetIdentifier": "app-blue",
              "AliasTarget": {"DNSName": "nodeapp-prod-2.us-east-1.elb.amazonaws.com."}}
    plain = {"Name": "www.example.com.", "ResourceRecords": [{"Value": "192.0.2.1"}]}
    lbs = ["nodeapp-dev-1.us-east-1.elb.amazonaws.com"]
    assert dns.stack_alias_records([ours, theirs, plain], lbs) == [ours]
    assert dns.stack_alias_records([ours, theirs, plain], lbs, False) == [theirs, plain]
    assert dns.stack_alias_records([ours], []) == []


def test_aliased_load_balancers_are_found_by_their_dns_names() -> None:
    record = {"Name": "app.example.com.", "AliasTarget": {"DNSName": "dualstack.other-1.us-east-1.elb.amazonaws.com."}}
    other = {"load_balancer_name": "other", "dns_name": "Other-1.us-east-1.elb.amazonaws.com"}
    ours = {"load_balancer_name": "nodeapp-dev", "dns_name": "nodeapp-dev-2.us-east-1.elb.amazonaws.com"}
    assert dns.stack_aliased_lbs([record], [ours, other]) == [other]
    assert dns.stack_aliased_lbs([], [ours, other]) == []


def test_app_records_are_the_names_a_alias_records_of_any_set_identifier() -> None:
    alias = {"DNSName": "lb-1.us-east-1.elb.amazonaws.com."}
    plain = {"Name": "app.example.com.", "Type": "A", "AliasTarget": alias}
    blue = {"Name": "App.Example.com.", "Type": "A", "SetIdentifier": "app-blue", "AliasTarget": alias}
    ipv6 = {"Name": "app.example.com.", "Type": "AAAA", "AliasTarget": alias}
    fixed = {"Name": "app.example.com.", "Type": "A", "ResourceRecords": [{"Value": "192.0.2.1"}]}
    other = {"Name": "www.app.example.com.", "Type": "A", "AliasTarget": alias}
    found = dns.stack_app_records([plain, blue, ipv6, fixed, other], "app.example.com")
    assert found == [plain, blue]
    assert dns.stack_app_records([plain], "app.example.com.") == [plain]


def test_records_of_set_identifiers_with_empty_for_the_plain_record() -> None:
    plain, blue = {"Name": "app.example.com."}, {"Name": "app.example.com.", "SetIdentifier": "app-blue"}
    assert dns.stack_records_of([plain, blue], [""]) == [plain]
    assert dns.stack_records_of([plain, blue], ["app-blue"]) == [blue]
    assert dns.stack_records_of([plain, blue], ["", "app-blue", "app-green"]) == [plain, blue]


@pytest.mark.parametrize(("cert_names", "uncovered"), [
    (["app.example.com"], []),
    (["APP.Example.com."], []),
    (["*.example.com"], []),
    (["example.com"], ["app.example.com"]),
    (["*.app.example.com"], ["app.example.com"]),  # a wildcard stands for one label, not none
    (["*.com"], ["app.example.com"]),  # nor for two
    (["www.example.com", "*.other.example.com"], ["app.example.com"]),
    ([], ["app.example.com"]),
])
def test_a_certificate_covers_a_name_as_tls_clients_match_it(cert_names: list[str], uncovered: list[str]) -> None:
    assert dns.stack_names_uncovered(cert_names, ["app.example.com"]) == uncovered


def test_the_stack_owns_only_what_carries_every_one_of_its_tags() -> None:
    tags = {"Project": "nodestack", "App": "nodeapp", "Environment": "dev"}
    ours = {"name": "ours", "tags": {**tags, "Name": "nodeapp-dev"}}
    listed = {"name": "listed", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}  # AWS's list form
    other_app = {"name": "other app", "tags": {**tags, "App": "shop"}}
    other_env = {"name": "other env", "tags": {**tags, "Environment": "prod"}}
    untagged_app = {"name": "no App tag", "tags": {"Project": "nodestack", "Environment": "dev"}}
    found = owned.stack_owned([ours, other_app, other_env, untagged_app], tags)
    assert [r["name"] for r in found] == ["ours"]
    assert owned.stack_owned([listed], tags, tags_key="Tags") == [listed]


def test_a_groups_tags_are_sorted_and_given_to_its_instances() -> None:
    tags = {"Project": "nodestack", "Name": "nodeapp-dev", "App": "nodeapp", "Environment": "dev"}
    assert owned.stack_asg_tags(tags) == [
        {"App": "nodeapp", "propagate_at_launch": True}, {"Environment": "dev", "propagate_at_launch": True},
        {"Name": "nodeapp-dev", "propagate_at_launch": True}, {"Project": "nodestack", "propagate_at_launch": True}]


def test_preflight_validates_every_layers_spec_and_refuses_a_tree_without_one(tmp_path: Path) -> None:
    specs = {spec["role"]: spec["options"] for spec in settings.stack_layer_specs(str(REPO / "roles"))}
    assert set(specs) == {p.parents[1].name for p in (REPO / "roles").glob("stack_*/meta/argument_specs.yml")}
    assert specs["stack_compute"]["stack_launch_kind"]["choices"] == ["template", "configuration"]
    with pytest.raises(ValueError, match="no layer role's argument spec"):
        settings.stack_layer_specs(str(tmp_path))
