"""The AMIs of this project in EC2: promotion (validated tag + SSM parameter) and pruning."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodestack import names


def promote(ec2: Any, ssm: Any, ami_id: str, app: str, env: str) -> str:
    """Mark a validated AMI and publish it where the provisioning playbooks read it."""
    ec2.create_tags(Resources=[ami_id], Tags=[{"Key": "validated", "Value": "true"}])
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
    ec2.create_tags(Resources=[ami_id], Tags=[{"Key": "NodejsVersion", "Value": version}])
    return version


def require_imds_v2(ec2: Any, ami_id: str) -> bool:
    """Mark the AMI ImdsSupport=v2.0 (instances launched from it get IMDSv2 only, whatever launched
    them; Packer 1.6.6 cannot set it) and say whether EC2 now reports it."""
    ec2.modify_image_attribute(ImageId=ami_id, ImdsSupport={"Value": "v2.0"})
    image = ec2.describe_images(ImageIds=[ami_id])["Images"][0]
    return bool(image.get("ImdsSupport") == "v2.0")


def mark_failed(ec2: Any, ami_id: str, reason: str) -> None:
    """An AMI that failed validation: tagged, then deregistered with its snapshots."""
    ec2.create_tags(Resources=[ami_id], Tags=[{"Key": "validated", "Value": "failed"},
                                              {"Key": "ValidationError", "Value": reason[:250]}])
    image = ec2.describe_images(ImageIds=[ami_id])["Images"][0]
    _deregister(ec2, image)


def project_images(ec2: Any, app: str, env: str) -> list[dict[str, Any]]:
    """The app's AMIs of env: its App tag, or (baked before AMIs had one) its name; another app's
    in the same account are not its to prune."""
    filters = [{"Name": "tag:Project", "Values": [names.project()]}, {"Name": "tag:Environment", "Values": [env]}]
    images = ec2.describe_images(Owners=["self"], Filters=filters)["Images"]

    def ours(image: dict[str, Any]) -> bool:
        tags = {t["Key"]: t["Value"] for t in image.get("Tags", [])}
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
    remove: list[str] = field(default_factory=list)


# Promoted AMIs kept whatever their age (the newest: what prod's parameter names; the one before:
# what prod may still run until its rollout). A separate prod account launches them from here, and
# its launch templates are not this account's to see.
KEEP_PROMOTED = 2


def plan_prune(ec2: Any, autoscaling: Any, app: str, env: str, keep: int) -> PrunePlan:
    """Newest `keep` validated AMIs stay, the newest KEEP_PROMOTED promoted ones, and any AMI in
    use; the rest of the env's AMIs go."""
    if keep < 1:
        raise ValueError(f"--keep {keep} is invalid: keep at least 1 validated AMI")
    images = sorted(project_images(ec2, app, env), key=lambda i: i.get("CreationDate", ""), reverse=True)
    promoted = sorted((i for i in images if _tag(i, "PromotedAt")), key=lambda i: _tag(i, "PromotedAt"), reverse=True)
    used = images_in_use(ec2, autoscaling) | {i["ImageId"] for i in promoted[:KEEP_PROMOTED]}
    plan = PrunePlan(env)
    validated = 0
    for image in images:
        tags = {t["Key"]: t["Value"] for t in image.get("Tags", [])}
        if tags.get("validated") == "true" and validated < keep:
            validated += 1
            plan.keep.append(image["ImageId"])
        elif image["ImageId"] in used:
            plan.in_use.append(image["ImageId"])
        else:
            plan.remove.append(image["ImageId"])
    return plan


def apply_prune(ec2: Any, plan: PrunePlan) -> None:
    if plan.remove:
        for image in ec2.describe_images(ImageIds=plan.remove)["Images"]:
            _deregister(ec2, image)


def _tag(image: dict[str, Any], key: str) -> str:
    return next((str(t["Value"]) for t in image.get("Tags", []) if t["Key"] == key), "")


def _deregister(ec2: Any, image: dict[str, Any]) -> None:
    ec2.deregister_image(ImageId=image["ImageId"])
    for mapping in image.get("BlockDeviceMappings", []):
        snapshot = mapping.get("Ebs", {}).get("SnapshotId")
        if snapshot:
            ec2.delete_snapshot(SnapshotId=snapshot)
