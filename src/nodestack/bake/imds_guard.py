"""Requires IMDSv2 on the bake's build instance as soon as it appears: Packer 1.6.6 has no
setting for it, and the instance must never answer IMDSv1 while the deploy key is on it."""

from __future__ import annotations

import threading
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from nodestack.bake.run_owner import TAG_RUN


class ImdsGuard(threading.Thread):
    """Requires IMDSv2 on the build instance as soon as it appears (Packer 1.6.6 cannot)."""

    def __init__(self, ec2: Any, ami_name: str, run: str = "") -> None:
        super().__init__(daemon=True)
        self.ec2, self.run_name = ec2, f"packer-build-{ami_name}"
        # the run's own tag (run_owner): two machines' bakes of an environment may share a second
        self.run_filter = [{"Name": f"tag:{TAG_RUN}", "Values": [run]}] if run else []
        self.instance_id = ""
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(1):
            try:
                reservations = self.ec2.describe_instances(Filters=[
                    {"Name": "tag:Name", "Values": [self.run_name]},
                    {"Name": "instance-state-name", "Values": ["pending", "running"]},
                    *self.run_filter])["Reservations"]
                for instance in (i for r in reservations for i in r["Instances"]):
                    self.ec2.modify_instance_metadata_options(InstanceId=instance["InstanceId"],
                                                              HttpTokens="required", HttpEndpoint="enabled")
                    self.instance_id = instance["InstanceId"]
                    return
            except (BotoCoreError, ClientError):
                continue

    def enforced(self) -> bool:
        if not self.instance_id:
            return False
        instance = self.ec2.describe_instances(InstanceIds=[self.instance_id])["Reservations"][0]["Instances"][0]
        return bool(instance.get("MetadataOptions", {}).get("HttpTokens") == "required")
