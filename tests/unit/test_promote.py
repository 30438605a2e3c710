"""nodestack promote's checks that need no cloud: what dev runs against the candidate, and the KMS
path of a separate prod account (encrypted snapshots), which the local cloud cannot emulate across
accounts: its calls are checked against botocore's Stubber (the real request shapes)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from nodestack.bake import promote

BUILD, PROD = "111122223333", "444455556666"
KEY = f"arn:aws:kms:us-east-1:{BUILD}:key/1a2b3c4d-5678-90ab-cdef-1234567890ab"
IMAGE = {"ImageId": "ami-0123456789abcdef0", "Tags": [{"Key": "AppRevision", "Value": "v1.2.0"},
                                                      {"Key": "NodejsVersion", "Value": "22.11.0"}],
         "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": "snap-0123456789abcdef0"}}]}


def _policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{BUILD}:root"},
         "Action": "kms:*", "Resource": "*"}, *statements]})


def _clients(policy: str, manager: str = "CUSTOMER") -> tuple[Any, Any, Stubber, Stubber]:
    ec2, kms = boto3.client("ec2", region_name="us-east-1"), boto3.client("kms", region_name="us-east-1")
    ec2_stub, kms_stub = Stubber(ec2), Stubber(kms)
    ec2_stub.add_response("describe_snapshots", {"Snapshots": [
        {"SnapshotId": "snap-0123456789abcdef0", "Encrypted": True, "KmsKeyId": KEY}]},
        {"SnapshotIds": ["snap-0123456789abcdef0"]})
    kms_stub.add_response("describe_key", {"KeyMetadata": {"KeyId": KEY.rsplit("/", 1)[1], "Arn": KEY,
                                                           "KeyManager": manager}}, {"KeyId": KEY})
    if manager == "CUSTOMER":
        kms_stub.add_response("get_key_policy", {"Policy": policy}, {"KeyId": KEY, "PolicyName": "default"})
    return ec2, kms, ec2_stub, kms_stub


def test_a_key_whose_policy_allows_the_prod_account_is_granted_from_the_prod_account() -> None:
    policy = _policy(*promote.key_policy_statements(PROD, "aws"))
    ec2, kms, ec2_stub, kms_stub = _clients(policy)
    with ec2_stub, kms_stub:
        assert promote.customer_keys(ec2, kms, IMAGE, PROD, "aws") == [KEY]
    prod_kms = boto3.client("kms", region_name="us-east-1")
    role = f"arn:aws:iam::{PROD}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
    with Stubber(prod_kms) as stub:
        stub.add_response("create_grant", {"GrantId": "g", "GrantToken": "t"},
                          {"KeyId": KEY, "GranteePrincipal": role, "Operations": list(promote.GRANT_OPERATIONS),
                           "Name": "nodeapp-prod-autoscaling"})
        promote.grant_key(prod_kms, KEY, PROD, "aws", "nodeapp")
        stub.assert_no_pending_responses()


def test_a_key_policy_without_the_prod_account_stops_naming_the_statements_to_add() -> None:
    ec2, kms, ec2_stub, kms_stub = _clients(_policy())
    with ec2_stub, kms_stub, pytest.raises(promote.PromoteError) as err:
        promote.customer_keys(ec2, kms, IMAGE, PROD, "aws")
    assert f"does not let account {PROD} use it" in str(err.value)
    assert f'"AWS": "arn:aws:iam::{PROD}:root"' in str(err.value) and "kms:CreateGrant" in str(err.value)
    assert "Condition" not in str(err.value)  # promote creates the grant itself: no kms:GrantIsForAWSResource


def test_an_aws_managed_key_cannot_be_shared() -> None:
    ec2, kms, ec2_stub, kms_stub = _clients("", manager="AWS")
    with ec2_stub, kms_stub, pytest.raises(promote.PromoteError, match="AWS managed key .* cannot be shared"):
        promote.customer_keys(ec2, kms, IMAGE, PROD, "aws")


def test_the_key_use_must_be_allowed_besides_grants() -> None:
    grants_only = promote.key_policy_statements(PROD, "aws")[1:]
    assert not promote.key_policy_allows(json.loads(_policy(*grants_only)), PROD)
    assert promote.key_policy_allows(json.loads(_policy(*promote.key_policy_statements(PROD, "aws"))), PROD)


def test_a_create_grant_allowed_only_for_aws_resources_does_not_count() -> None:
    """kms:GrantIsForAWSResource is true only when an AWS service calls on the caller's behalf;
    promote calls CreateGrant itself, so such a statement would deny it."""
    use, grants = promote.key_policy_statements(PROD, "aws")
    conditioned = {**grants, "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}}
    assert not promote.key_policy_allows(json.loads(_policy(use, conditioned)), PROD)


def test_dev_tested_means_the_same_revision_and_nodejs_as_a_dev_group() -> None:
    running = [promote.Running("nodeapp-dev-blue", "ami-1", "v1.1.0", "22.11.0"),
               promote.Running("nodeapp-dev-green", "ami-2", "v1.2.0", "22.11.0")]
    assert promote.check_dev_tested(IMAGE, running, "nodeapp").group == "nodeapp-dev-green"
    other_node = [promote.Running("nodeapp-dev", "ami-3", "v1.2.0", "24.1.0")]
    with pytest.raises(promote.PromoteError, match=r"dev stack runs v1.2.0 on Node.js 24.1.0 \(ami-3"):
        promote.check_dev_tested(IMAGE, other_node, "nodeapp")
    with pytest.raises(promote.PromoteError, match="no dev stack of nodeapp runs"):
        promote.check_dev_tested(IMAGE, [], "nodeapp")
