"""The deployed stack is what the settings declare: group, launch template, load balancer,
listeners, security group ingress and egress, alarms, the log group and the DNS record; IMDSv2 required by
both the AMI (ImdsSupport) and the launch template or configuration."""

from __future__ import annotations

from typing import Any

import pytest

from nodestack.stack_state import alarm_tags_query


@pytest.fixture(scope="session")
def group(aws: Any, declared: dict[str, Any]) -> dict[str, Any]:
    groups = aws("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[declared["release"]])
    assert len(groups["AutoScalingGroups"]) == 1, f"no Auto Scaling group {declared['release']}"
    return groups["AutoScalingGroups"][0]


def _tag_filters(declared: dict[str, Any]) -> list[dict[str, Any]]:
    """What the stack's resources are found by: every tag of the stack (project, app, environment)."""
    return [{"Name": f"tag:{key}", "Values": [value]} for key, value in sorted(declared["tags"].items())]


@pytest.fixture(scope="session")
def private_subnets(aws: Any, declared: dict[str, Any]) -> set[str]:
    subnets = aws("ec2").describe_subnets(Filters=_tag_filters(declared))["Subnets"]
    return {s["SubnetId"] for s in subnets if {"Key": "Tier", "Value": "private"} in s.get("Tags", [])}


@pytest.fixture(scope="session")
def groups_by_name(aws: Any, declared: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = aws("ec2").describe_security_groups(Filters=_tag_filters(declared))
    return {g["GroupName"]: g for g in found["SecurityGroups"]}


def test_group_capacity_and_subnets(group: dict[str, Any], declared: dict[str, Any], private_subnets: set[str]) -> None:
    assert (group["MinSize"], group["MaxSize"]) == (declared["min_size"], declared["max_size"])
    assert group["MinSize"] <= group["DesiredCapacity"] <= group["MaxSize"]
    in_service = [i for i in group["Instances"]
                  if i["LifecycleState"] == "InService" and i["HealthStatus"] == "Healthy"]
    assert len(in_service) == group["DesiredCapacity"]
    assert set(group["VPCZoneIdentifier"].split(",")) == private_subnets
    assert len(private_subnets) >= 2
    assert group["HealthCheckType"] == "ELB"
    assert group["HealthCheckGracePeriod"] == declared["health_check_grace"]
    assert group["TerminationPolicies"] == declared["termination_policies"]


def test_instances_run_the_promoted_ami_hardened(aws: Any, group: dict[str, Any], declared: dict[str, Any],
                                                 groups_by_name: dict[str, dict[str, Any]]) -> None:
    if declared["launch_kind"] == "configuration":
        config = aws("autoscaling").describe_launch_configurations(
            LaunchConfigurationNames=[group["LaunchConfigurationName"]])["LaunchConfigurations"][0]
        assert config["ImageId"] == declared["ami_id"]
        assert all(b["Ebs"]["Encrypted"] for b in config["BlockDeviceMappings"])
        assert config.get("MetadataOptions", {}).get("HttpTokens") == "required", "IMDSv1 allowed"
        return
    template = group["LaunchTemplate"]
    data = aws("ec2").describe_launch_template_versions(
        LaunchTemplateId=template["LaunchTemplateId"], Versions=[template["Version"]])["LaunchTemplateVersions"][0]
    spec = data["LaunchTemplateData"]
    assert spec["ImageId"] == declared["ami_id"]
    assert spec["MetadataOptions"]["HttpTokens"] == "required"
    assert all(b["Ebs"]["Encrypted"] for b in spec["BlockDeviceMappings"])
    profile = spec["IamInstanceProfile"]  # the module names it by ARN
    names = declared["names"]
    assert (profile.get("Name") == names["instance_role"]
            or profile["Arn"].endswith(f"instance-profile{names['iam_path']}{names['instance_role']}"))
    assert spec["SecurityGroupIds"] == [groups_by_name[declared["names"]["app_group"]]["GroupId"]]


def test_ami_allows_only_imdsv2(aws: Any, declared: dict[str, Any]) -> None:
    image = aws("ec2").describe_images(ImageIds=[declared["ami_id"]])["Images"][0]
    assert image.get("ImdsSupport") == "v2.0", f"{declared['ami_id']} is not marked ImdsSupport=v2.0"


def test_load_balancer_attributes(aws: Any, declared: dict[str, Any]) -> None:
    if declared["lb_kind"] == "classic":
        pytest.skip("a classic ELB has none of these attributes")
    elbv2 = aws("elbv2")
    arn = elbv2.describe_load_balancers(Names=[declared["release"]])["LoadBalancers"][0]["LoadBalancerArn"]
    attributes = {a["Key"]: a["Value"]
                  for a in elbv2.describe_load_balancer_attributes(LoadBalancerArn=arn)["Attributes"]}
    assert attributes.get("routing.http.drop_invalid_header_fields.enabled") == "true"
    assert attributes.get("deletion_protection.enabled") == str(declared["lb_deletion_protection"]).lower()
    if declared["lb_access_logs_bucket"]:
        assert (attributes.get("access_logs.s3.enabled"), attributes.get("access_logs.s3.bucket"),
                attributes.get("access_logs.s3.prefix")) == (
            "true", declared["lb_access_logs_bucket"], declared["lb_access_logs_prefix"])
    else:
        assert attributes.get("access_logs.s3.enabled", "false") == "false"


def test_load_balancer_health_check(aws: Any, group: dict[str, Any], declared: dict[str, Any]) -> None:
    if declared["lb_kind"] == "classic":
        assert group["LoadBalancerNames"] == [declared["release"]]
        check = aws("elb").describe_load_balancers(
            LoadBalancerNames=[declared["release"]])["LoadBalancerDescriptions"][0]["HealthCheck"]
        assert check["Target"] == f"HTTP:{declared['app_port']}{declared['health_check_path']}"
        return
    tg_arn = group["TargetGroupARNs"]
    tg = aws("elbv2").describe_target_groups(Names=[declared["names"]["target_group"]])["TargetGroups"][0]
    assert tg_arn == [tg["TargetGroupArn"]]
    assert (tg["Port"], tg["HealthCheckPath"], tg["HealthCheckPort"]) == (
        declared["app_port"], declared["health_check_path"], str(declared["app_port"]))
    assert tg["HealthCheckIntervalSeconds"] == declared["health_check_interval"]
    assert (tg["HealthyThresholdCount"], tg["UnhealthyThresholdCount"]) == (
        declared["healthy_threshold"], declared["unhealthy_threshold"])
    targets = aws("elbv2").describe_target_health(TargetGroupArn=tg_arn[0])["TargetHealthDescriptions"]
    registered = {t["Target"]["Id"] for t in targets if t["TargetHealth"]["State"] != "draining"}  # leaving ones
    assert registered == {i["InstanceId"] for i in group["Instances"]}


def test_listeners(aws: Any, declared: dict[str, Any]) -> None:
    if declared["lb_kind"] == "classic":
        listeners = aws("elb").describe_load_balancers(
            LoadBalancerNames=[declared["release"]])["LoadBalancerDescriptions"][0]["ListenerDescriptions"]
        ports = sorted(item["Listener"]["LoadBalancerPort"] for item in listeners)
        assert ports == ([80, 443] if declared["certificate_arn"] else [80])
        return
    elbv2 = aws("elbv2")
    lb = elbv2.describe_load_balancers(Names=[declared["release"]])["LoadBalancers"][0]
    listeners = {item["Port"]: item
                 for item in elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]}
    if declared["certificate_arn"]:
        assert sorted(listeners) == [80, 443]
        assert listeners[80]["DefaultActions"][0]["Type"] == "redirect"
        assert listeners[443]["Certificates"][0]["CertificateArn"] == declared["certificate_arn"]
    else:
        assert sorted(listeners) == [80]
        assert listeners[80]["DefaultActions"][0]["Type"] == "forward"


def _ingress(group: dict[str, Any], key: str = "IpPermissions") -> set[tuple[int, str]]:
    rules = set()
    for perm in group[key]:
        rules |= {(perm["FromPort"], r["CidrIp"]) for r in perm.get("IpRanges", [])}
        rules |= {(perm["FromPort"], r["GroupId"]) for r in perm.get("UserIdGroupPairs", [])}
    return rules


def test_security_group_ingress_exactly_as_declared(groups_by_name: dict[str, dict[str, Any]],
                                                    declared: dict[str, Any]) -> None:
    lb, app = groups_by_name[declared["names"]["lb_group"]], groups_by_name[declared["names"]["app_group"]]
    assert _ingress(lb) == {(80, "0.0.0.0/0"), (443, "0.0.0.0/0")}
    expected_app = {(declared["app_port"], lb["GroupId"])}
    if declared["bastion_enabled"]:
        expected_app.add((22, groups_by_name[declared["names"]["bastion_group"]]["GroupId"]))
    assert _ingress(app) == expected_app


def test_security_group_egress_only_what_is_needed(groups_by_name: dict[str, dict[str, Any]],
                                                    declared: dict[str, Any]) -> None:
    lb, app = groups_by_name[declared["names"]["lb_group"]], groups_by_name[declared["names"]["app_group"]]
    assert _ingress(lb, "IpPermissionsEgress") == {(declared["app_port"], app["GroupId"])}
    assert _ingress(app, "IpPermissionsEgress") == {(port, "0.0.0.0/0") for port in declared["app_egress_ports"]}
    assert all(p["IpProtocol"] == "tcp" for g in (lb, app) for p in g["IpPermissionsEgress"]), "no all-traffic egress"


def test_alarms(aws: Any, declared: dict[str, Any]) -> None:
    names = declared["alarms"]
    alarms = {a["AlarmName"]: a for a in aws("cloudwatch").describe_alarms(AlarmNames=names)["MetricAlarms"]}
    assert sorted(alarms) == sorted(names)
    assert ":scalingPolicy:" in alarms[names[0]]["AlarmActions"][0]
    assert alarms[names[2]]["MetricName"] == "UnHealthyHostCount"
    # what teardown finds them by: every tag of the stack on each. One call for all; the tagging API
    # may lag a tagging made seconds ago, so an alarm it leaves out is asked of CloudWatch itself
    tagged = aws("resourcegroupstaggingapi").get_resources(**alarm_tags_query(declared["tags"]))
    listed = {r["ResourceARN"] for r in tagged["ResourceTagMappingList"]}
    for name, alarm in alarms.items():
        if alarm["AlarmArn"] not in listed:
            tags = {t["Key"]: t["Value"]
                    for t in aws("cloudwatch").list_tags_for_resource(ResourceARN=alarm["AlarmArn"])["Tags"]}
            assert {key: tags.get(key) for key in declared["tags"]} == declared["tags"], name


def test_log_group(aws: Any, declared: dict[str, Any]) -> None:
    name = declared["names"]["log_group"]
    logs = aws("logs")
    found = [g for g in logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"] if g["logGroupName"] == name]
    assert len(found) == 1, f"no log group {name}"
    assert found[0].get("retentionInDays") == declared["log_retention_days"]
    tags = logs.list_tags_log_group(logGroupName=name)["tags"]  # what teardown finds it by
    assert {key: tags.get(key) for key in declared["tags"]} == declared["tags"]


def test_dns_record_points_at_the_load_balancer(aws: Any, declared: dict[str, Any]) -> None:
    if not declared["dns_zone"]:
        pytest.skip("no stack_dns_zone: the stack has no DNS record")
    route53 = aws("route53")
    zone = route53.list_hosted_zones_by_name(DNSName=declared["dns_zone"] + ".", MaxItems="1")["HostedZones"][0]
    listed = route53.list_resource_record_sets(HostedZoneId=zone["Id"], StartRecordName=declared["dns_record"] + ".")
    records = [r for r in listed["ResourceRecordSets"]
               if r["Name"] == declared["dns_record"] + "." and r["Type"] == "A"
               and r.get("SetIdentifier") == (declared["dns_identifier"] or None)]
    assert len(records) == 1
    if declared["lb_kind"] == "classic":
        lb_dns = aws("elb").describe_load_balancers(
            LoadBalancerNames=[declared["release"]])["LoadBalancerDescriptions"][0]["DNSName"]
    else:
        lb_dns = aws("elbv2").describe_load_balancers(Names=[declared["release"]])["LoadBalancers"][0]["DNSName"]
    assert records[0]["AliasTarget"]["DNSName"].rstrip(".") == lb_dns.rstrip(".")
    assert records[0]["AliasTarget"]["EvaluateTargetHealth"] is True
