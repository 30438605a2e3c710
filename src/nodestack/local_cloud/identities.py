"""IAM enforced on the local cloud (`nodestack local up --enforce-iam`): an administrator for the
harness and a deployer holding exactly the policy files, created before enforcement starts.

moto authorises every request once its count of free requests is used up; it is set to 0 through
/moto-api/reset-auth after the identities exist. Their keys stay in the state directory (0600):
they open nothing but this emulator."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import yaml

from nodestack import names, permissions
from nodestack.paths import REPO_ROOT, state_dir

ADMIN = "nodestack-admin"
DEPLOYER = "deployer"
# Set by `nodestack local env --as NAME`: the identity the local target runs as (the bake too).
IDENTITY_ENV = "NODESTACK_LOCAL_IDENTITY"
ACCOUNT = "123456789012"  # moto's default account
# The policies are rendered for the local inventory's app.
LOCAL_SETTINGS = REPO_ROOT / "inventories" / "local" / "group_vars" / "all.yml"


class IdentityError(RuntimeError):
    """An identity the local cloud does not have; the message says how to get it."""


def identities_file() -> Path:
    return state_dir() / "local-cloud-identities.json"


def local_scope(region: str) -> permissions.Scope:
    app = yaml.safe_load(LOCAL_SETTINGS.read_text()).get("stack_app_name", "nodeapp")
    return permissions.Scope(app=str(app), account=ACCOUNT, region=region)


def policy_name(scope: permissions.Scope, kind: str) -> str:
    return f"{scope.app}-deployer-{kind}"


def set_up(url: str, region: str, enforce_iam: bool) -> None:
    """What an administrator does once in an account (docs/aws-setup.md): the instance roles'
    permissions boundary; with enforce_iam also the identities, then enforcement."""
    iam = boto3.client("iam", endpoint_url=url, region_name=region,
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    scope = local_scope(region)
    iam.create_policy(PolicyName=names.instance_boundary(scope.app),
                      PolicyDocument=json.dumps(permissions.render("instance-boundary", scope)))
    if enforce_iam:
        create(iam, url, scope)


def create(iam: Any, url: str, scope: permissions.Scope) -> dict[str, dict[str, str]]:
    """Create the administrator and the deployer, then turn enforcement on; returns their keys."""
    keys: dict[str, dict[str, str]] = {}
    for user in (ADMIN, DEPLOYER):
        iam.create_user(UserName=user)
        key = iam.create_access_key(UserName=user)["AccessKey"]
        keys[user] = {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
    iam.put_user_policy(UserName=ADMIN, PolicyName="everything", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    for kind in permissions.DEPLOYER_KINDS:
        document = permissions.for_emulator(permissions.render(kind, scope))
        arn = iam.create_policy(PolicyName=policy_name(scope, kind),
                                PolicyDocument=json.dumps(document))["Policy"]["Arn"]
        iam.attach_user_policy(UserName=DEPLOYER, PolicyArn=arn)
    path = identities_file()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(keys, fh)
    request = urllib.request.Request(f"{url}/moto-api/reset-auth", data=b"0", method="POST",
                                     headers={"Content-Type": "text/plain"})  # a form body would be parsed away
    with urllib.request.urlopen(request, timeout=10) as response:
        if response.status != 200:
            raise IdentityError(f"the local cloud did not turn IAM enforcement on (HTTP {response.status})")
    return keys


def enforcing() -> bool:
    return identities_file().exists()


def credentials(identity: str | None) -> dict[str, str]:
    """The keys of identity (default: the administrator) on an IAM-enforcing local cloud."""
    try:
        keys: dict[str, dict[str, str]] = json.loads(identities_file().read_text())
    except (OSError, ValueError) as exc:
        raise IdentityError("the local cloud does not enforce IAM: start it with "
                            "`nodestack local up --enforce-iam` to run as an identity") from exc
    name = identity or ADMIN
    if name not in keys:
        raise IdentityError(f"the local cloud has no identity {name!r}: choose {' or '.join(sorted(keys))}")
    return keys[name]


def remove() -> None:
    identities_file().unlink(missing_ok=True)

