"""The AMIs of this project in EC2: promotion (validated tag + SSM parameter) and pruning."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodestack import names

# Tag keys of an AMI: the bake's verdict and what it runs (app_source_version as given, the full
# commit id the app was built from, the Node.js version); `nodestack promote`'s record. A tag can
# be moved to another commit: what is compared is AppCommit.
VALIDATED, APP_REVISION, APP_COMMIT, NODEJS_VERSION = "validated", "AppRevision", "AppCommit", "NodejsVersion"
PROMOTED_BY, PROMOTED_AT, PROMOTED_TO = "PromotedBy", "PromotedAt", "PromotedTo"
PROMOTION_RECORD = (PROMOTED_BY, PROMOTED_AT, PROMOTED_TO)
# What the prod account tags on an AMI shared with it (tags are each account's own).
PROMOTED_IMAGE_TAGS = (VALIDATED, APP_REVISION, APP_COMMIT, NODEJS_VERSION, *PROMOTION_RECORD)
# A separate prod account's Auto Scaling service-linked role and the operations its grant on the
# build account's key gives it (AWS, "Required AWS KMS key policy for use with encrypted volumes",
# Example 2: the grant is created from the account that owns the group).
GRANT_OPERATIONS = ("Encrypt", "Decrypt", "ReEncryptFrom", "ReEncryptTo", "GenerateDataKey",
                    "GenerateDataKeyWithoutPlaintext", "DescribeKey", "CreateGrant")


def autoscaling_role(partition: str, account: str) -> str:
    return (f"arn:{partition}:iam::{account}:role/aws-service-role/autoscaling.amazonaws.com/"
            "AWSServiceRoleForAutoScaling")


def tags_of(resource: Mapping[str, Any]) -> dict[str, str]:
    """An EC2 resource's tags (as describe calls return them) as a dict."""
    return {str(t["Key"]): str(t["Value"]) for t in resource.get("Tags", [])}


def promote(ec2: Any, ssm: Any, ami_id: str, app: str, env: str) -> str:
    """Mark a validated AMI and publish it where the provisioning playbooks read it."""
    ec2.create_tags(Resources=[ami_id], Tags=[{"Key": VALIDATED, "Value": "true"}])
    name = names.ami_parameter(app, env)
    ssm.put_parameter(Name=name, Value=ami_id, Type="String", Overwrite=True,
                      Description=f"newest validated {env} AMI of {app}, set by the bake job")
    return name


def record_nodejs_version(ec2: Any, ami_id: str, report: Path) -> str:
    """nodejs_version auto: tag the AMI with the exact version the image checks saw the app run
    (Packer tagged it "auto"); "" when the checks reported none."""
    version = report.read_text().strip() if report.is_file() else ""
    if not re.fullmatch(r"\d+\.\d+\.\d+", version):
        return ""
    ec2.create_tags(Resources=[ami_id], Tags=[{"Key": NODEJS_VERSION, "Value": version}])
    return version


def describe(ec2: Any, ami_id: str, app: str, env: str, app_revision: str, nodejs_version: str) -> None:
    """The AMI's description, set once its tags are on: Packer 1.6.6 sets a description (ami_description)
    before it tags the image, which the bake's deployer may not do to an image without its App tag."""
    ec2.modify_image_attribute(ImageId=ami_id, Description={
        "Value": f"{app} {env} app server, app {app_revision}, Node.js {nodejs_version}"})


def require_imds_v2(ec2: Any, ami_id: str) -> bool:
    """Mark the AMI ImdsSupport=v2.0 (instances launched from it get IMDSv2 only, whatever launched
    them; Packer 1.6.6 cannot set it) and say whether EC2 now reports it."""
    ec2.modify_image_attribute(ImageId=ami_id, ImdsSupport={"Value": "v2.0"})
    image = ec2.describe_images(ImageIds=[ami_id])["Images"][0]
    return bool(image.get("ImdsSupport") == "v2.0")


def mark_failed(ec2: Any, ami_id: str, reason: str) -> None:
    """An AMI that failed validation: tagged, then deregistered with its snapshots."""
    ec2.create_tags(Resources=[ami_id], Tags=[{"Key": VALIDATED, "Value": "failed"},
                                              {"Key": "ValidationError", "Value": reason[:250]}])
    image = ec2.describe_images(ImageIds=[ami_id])["Images"][0]
    _deregister(ec2, image)


def project_images(ec2: Any, app: str, env: str) -> list[dict[str, Any]]:
    """The app's AMIs of env: its App tag, or (baked before AMIs had one) its name; another app's
    in the same account are not its to prune."""
    filters = [{"Name": "tag:Project", "Values": [names.project()]}, {"Name": "tag:Environment", "Values": [env]}]
    images = ec2.describe_images(Owners=["self"], Filters=filters)["Images"]

    def ours(image: dict[str, Any]) -> bool:
        tags = tags_of(image)
        return tags.get("App", app) == app and ("App" in tags or image.get("Name", "").startswith(f"{app}-{env}-"))

    return [image for image in images if ours(image)]


def images_in_use(ec2: Any, autoscaling: Any) -> set[str]:
    """AMIs named by any launch template version or launch configuration."""
    used: set[str] = set()
    for page in ec2.get_paginator("describe_launch_templates").paginate():
        for template in page["LaunchTemplates"]:
            versions = ec2.describe_launch_template_versions(LaunchTemplateId=template["LaunchTemplateId"])
            used.update(v["LaunchTemplateData"].get("ImageId", "") for v in versions["LaunchTemplateVersions"])
    for page in autoscaling.get_paginator("describe_launch_configurations").paginate():
        used.update(c.get("ImageId", "") for c in page["LaunchConfigurations"])
    used.discard("")
    return used


@dataclass
class PrunePlan:
    env: str
    keep: list[str] = field(default_factory=list)
    in_use: list[str] = field(default_factory=list)
    shared: dict[str, str] = field(default_factory=dict)  # AMI -> whom its launch permissions name
    remove: list[str] = field(default_factory=list)


def shared_with(ec2: Any, ami_id: str) -> str:
    """Whom an AMI's launch permissions name ("" for nobody): a separate prod account launches a
    promoted AMI from here, and its launch templates are not this account's to see."""
    permissions = ec2.describe_image_attribute(ImageId=ami_id, Attribute="launchPermission")["LaunchPermissions"]
    return ", ".join(str(next(iter(p.values()))) for p in permissions if p)


def plan_prune(ec2: Any, autoscaling: Any, app: str, env: str, keep: int) -> PrunePlan:
    """Newest `keep` validated AMIs stay, and any AMI in use or shared with another account; the
    rest of the env's AMIs go."""
    if keep < 1:
        raise ValueError(f"--keep {keep} is invalid: keep at least 1 validated AMI")
    images = sorted(project_images(ec2, app, env), key=lambda i: i.get("CreationDate", ""), reverse=True)
    used = images_in_use(ec2, autoscaling)
    plan = PrunePlan(env)
    validated = 0
    for image in images:
        ami_id = image["ImageId"]
        if tags_of(image).get(VALIDATED) == "true" and validated < keep:
            validated += 1
            plan.keep.append(ami_id)
        elif ami_id in used:
            plan.in_use.append(ami_id)
        elif sharing := shared_with(ec2, ami_id):
            plan.shared[ami_id] = sharing
        else:
            plan.remove.append(ami_id)
    return plan


def apply_prune(ec2: Any, plan: PrunePlan) -> None:
    if plan.remove:
        for image in ec2.describe_images(ImageIds=plan.remove)["Images"]:
            _deregister(ec2, image)


def _deregister(ec2: Any, image: dict[str, Any]) -> None:
    ec2.deregister_image(ImageId=image["ImageId"])
    for mapping in image.get("BlockDeviceMappings", []):
        snapshot = mapping.get("Ebs", {}).get("SnapshotId")
        if snapshot:
            ec2.delete_snapshot(SnapshotId=snapshot)
