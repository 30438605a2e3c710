"""nodestack promote's checks that need no cloud: what dev runs against the candidate (the commit, not
the tag name), and the KMS path of a separate prod account (encrypted snapshots), which the local
cloud cannot emulate across accounts: its calls are checked against botocore's Stubber (the real
request shapes)."""

from __future__ import annotations

import json
import re
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from nodestack.bake import promote, registry
from nodestack.paths import REPO_ROOT

BUILD, PROD = "111122223333", "444455556666"
KEY = f"arn:aws:kms:us-east-1:{BUILD}:key/1a2b3c4d-5678-90ab-cdef-1234567890ab"
COMMIT, MOVED = "1" * 40, "2" * 40  # v1.2.0's commit at the prod bake, and where the tag was moved
IMAGE = {"ImageId": "ami-0123456789abcdef0", "Tags": [{"Key": "AppRevision", "Value": "v1.2.0"},
                                                      {"Key": "AppCommit", "Value": COMMIT},
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


def test_dev_tested_means_the_same_commit_and_nodejs_as_a_dev_group() -> None:
    running = [promote.Running("nodeapp-dev-blue", "ami-1", "v1.1.0", "3" * 40, "22.11.0"),
               promote.Running("nodeapp-dev-green", "ami-2", "release-1.2", COMMIT, "22.11.0")]
    assert promote.check_dev_tested(IMAGE, running, "nodeapp").group == "nodeapp-dev-green"  # another tag name
    other_node = [promote.Running("nodeapp-dev", "ami-3", "v1.2.0", COMMIT, "24.1.0")]
    with pytest.raises(promote.PromoteError, match=rf"dev stack runs v1.2.0 at {COMMIT} on Node.js 24.1.0 \(ami-3"):
        promote.check_dev_tested(IMAGE, other_node, "nodeapp")
    with pytest.raises(promote.PromoteError, match="no dev stack of nodeapp runs"):
        promote.check_dev_tested(IMAGE, [], "nodeapp")


def test_a_tag_moved_between_the_dev_and_the_prod_bake_is_not_dev_tested() -> None:
    moved = [promote.Running("nodeapp-dev", "ami-4", "v1.2.0", MOVED, "22.11.0")]
    with pytest.raises(promote.PromoteError) as refused:
        promote.check_dev_tested(IMAGE, moved, "nodeapp")
    assert (f"ami-0123456789abcdef0 (prod) runs nodeapp v1.2.0 at {COMMIT} on Node.js 22.11.0, but the dev stack "
            f"runs v1.2.0 at {MOVED} on Node.js 22.11.0 (ami-4, group nodeapp-dev): it is not dev-tested. Roll "
            f"{COMMIT} out to dev first (`nodestack bake --env dev --app-revision {COMMIT}`") in str(refused.value)


def test_a_dev_image_without_its_commit_matches_nothing_and_says_why() -> None:
    unrecorded = [promote.Running("nodeapp-dev", "ami-5", "v1.2.0", "", "22.11.0")]
    with pytest.raises(promote.PromoteError) as refused:
        promote.check_dev_tested(IMAGE, unrecorded, "nodeapp")
    assert "runs v1.2.0 at an unrecorded commit on Node.js 22.11.0 (ami-5" in str(refused.value)
    assert "(ami-5 baked before AMIs recorded their app's commit as AppCommit: a dev bake and rollout records it)" \
        in str(refused.value)


def test_the_bake_tags_every_ami_with_what_promote_compares() -> None:
    """Packer's origin tags (the one place outside the registry that spells them) carry the registry's names."""
    template = (REPO_ROOT / "packer" / "nodeapp.pkr.hcl").read_text()
    origin = template.split("origin_tags = {", 1)[1].split("\n  }\n", 1)[0]
    tagged = dict(re.findall(r"^\s*(\w+)\s*=\s*(\S+)", origin, re.MULTILINE))
    assert {key: tagged.get(key) for key in (registry.APP_REVISION, registry.APP_COMMIT, registry.NODEJS_VERSION)} == {
        registry.APP_REVISION: "var.app_revision", registry.APP_COMMIT: "var.app_commit",
        registry.NODEJS_VERSION: "var.nodejs_version"}
