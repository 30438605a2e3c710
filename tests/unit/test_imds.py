"""The local instance metadata service answers as AWS documents IMDS: IMDSv2 tokens, 401
without one when the instance requires them, only the cloud's own instances, and its
instance profile's credentials."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.ec2.models import ec2_backends
from werkzeug.test import Client, TestResponse

from nodestack.local_cloud.imds import MetadataService

ADDRESS = "10.89.0.5"


@pytest.fixture
def instance(moto_in_process: None) -> Iterator[Any]:
    iam, ec2 = boto3.client("iam"), boto3.client("ec2")
    iam.create_role(RoleName="app-role", AssumeRolePolicyDocument="{}")
    iam.create_instance_profile(InstanceProfileName="app-profile")
    iam.add_role_to_instance_profile(InstanceProfileName="app-profile", RoleName="app-role")
    launched = ec2.run_instances(ImageId="ami-785db401", MinCount=1, MaxCount=1,
                                 Placement={"AvailabilityZone": "us-east-1b"},
                                 IamInstanceProfile={"Name": "app-profile"},
                                 MetadataOptions={"HttpTokens": "required"})["Instances"][0]
    yield ec2_backends["123456789012"]["us-east-1"].get_instance(launched["InstanceId"])


class Caller:
    """Requests to the service from one source address."""

    def __init__(self, service: MetadataService, address: str) -> None:
        self.client, self.environ = Client(service), {"REMOTE_ADDR": address}

    def get(self, path: str, headers: dict[str, str] | None = None) -> TestResponse:
        return self.client.get(path, headers=headers or {}, environ_base=self.environ)

    def put(self, path: str, headers: dict[str, str] | None = None) -> TestResponse:
        return self.client.put(path, headers=headers or {}, environ_base=self.environ)


def client(instance: Any, address: str = ADDRESS) -> Caller:
    return Caller(MetadataService(lambda a: instance if a == ADDRESS else None), address)


def token(imds: Caller, ttl: str = "60") -> str:
    answer = imds.put("/latest/api/token", headers={"X-aws-ec2-metadata-token-ttl-seconds": ttl})
    assert answer.status_code == 200 and answer.headers["X-aws-ec2-metadata-token-ttl-seconds"] == ttl
    return answer.get_data(as_text=True)


def test_imdsv2_token_flow_and_refusals(instance: Any) -> None:
    imds = client(instance)
    assert imds.get("/latest/meta-data/instance-id").status_code == 401  # HttpTokens required
    assert imds.get("/latest/meta-data/instance-id", headers={"X-aws-ec2-metadata-token": "forged"}).status_code == 401
    given = {"X-aws-ec2-metadata-token": token(imds)}
    assert imds.get("/latest/meta-data/instance-id", headers=given).get_data(as_text=True) == instance.id
    assert imds.get("/latest/meta-data/placement/region", headers=given).get_data(as_text=True) == "us-east-1"
    assert (imds.get("/latest/meta-data/placement/availability-zone", headers=given).get_data(as_text=True)
            == "us-east-1b")
    assert imds.get("/latest/meta-data/nothing-here", headers=given).status_code == 404
    listing = imds.get("/latest/meta-data/", headers=given).get_data(as_text=True).split("\n")
    assert {"ami-id", "instance-id", "placement/", "iam/"} <= set(listing)
    for ttl in ("0", "21601", "soon"):
        assert imds.put("/latest/api/token", headers={"X-aws-ec2-metadata-token-ttl-seconds": ttl}).status_code == 400
    assert imds.put("/latest/api/token", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60",
                                                  "X-Forwarded-For": "1.2.3.4"}).status_code == 403


def test_only_the_clouds_instances_are_answered(instance: Any) -> None:
    stranger = client(instance, address="10.89.0.99")
    assert stranger.put("/latest/api/token", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}).status_code == 403


def test_a_token_is_the_instances_own(instance: Any) -> None:
    other = ec2_backends["123456789012"]["us-east-1"].get_instance(
        boto3.client("ec2").run_instances(ImageId="ami-785db401", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"])
    service = MetadataService(lambda a: {ADDRESS: instance, "10.89.0.6": other}.get(a))
    mine, theirs = Caller(service, ADDRESS), Caller(service, "10.89.0.6")
    assert theirs.get("/latest/meta-data/instance-id",
                      headers={"X-aws-ec2-metadata-token": token(mine)}).status_code == 401
    assert theirs.get("/latest/meta-data/instance-id").get_data(as_text=True) == other.id  # IMDSv1 allowed there
    assert theirs.get("/latest/meta-data/iam/security-credentials/").status_code == 404  # no instance profile


def test_credentials_are_the_instance_profiles_role(instance: Any) -> None:
    imds = client(instance)
    given = {"X-aws-ec2-metadata-token": token(imds)}
    assert imds.get("/latest/meta-data/iam/security-credentials/", headers=given).get_data(as_text=True) == "app-role"
    first = json.loads(imds.get("/latest/meta-data/iam/security-credentials/app-role", headers=given).get_data())
    assert first["Code"] == "Success" and first["Type"] == "AWS-HMAC" and first["Token"]
    again = json.loads(imds.get("/latest/meta-data/iam/security-credentials/app-role", headers=given).get_data())
    assert again["AccessKeyId"] == first["AccessKeyId"]  # cached until close to expiry
    caller = boto3.client("sts", aws_access_key_id=first["AccessKeyId"], aws_secret_access_key=first["SecretAccessKey"],
                          aws_session_token=first["Token"]).get_caller_identity()
    assert caller["Arn"] == f"arn:aws:sts::123456789012:assumed-role/app-role/{instance.id}"
    info = json.loads(imds.get("/latest/meta-data/iam/info", headers=given).get_data())
    assert info["InstanceProfileArn"].endswith(":instance-profile/app-profile")


def test_a_disabled_endpoint_answers_nothing(instance: Any) -> None:
    instance.metadata_options.http_endpoint = "disabled"
    assert client(instance).put("/latest/api/token",
                                headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}).status_code == 403
