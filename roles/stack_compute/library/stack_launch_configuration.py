#!/usr/bin/python
"""A launch configuration with metadata options (IMDSv2 required): the one thing
community.aws.autoscaling_launch_config cannot set. Launch configurations are immutable,
so this only creates one that is missing; the caller names it by its contents."""

from __future__ import annotations

DOCUMENTATION = r"""
module: stack_launch_configuration
short_description: Create an immutable Auto Scaling launch configuration with IMDSv2 required
description:
  - Creates the launch configuration O(name) unless it exists (launch configurations cannot change).
  - Instances launched from it answer metadata requests only with a session token (IMDSv2), hop limit 1.
options:
  name: {description: Launch configuration name., type: str, required: true}
  image_id: {description: AMI id., type: str, required: true}
  instance_type: {description: EC2 instance type., type: str, required: true}
  instance_profile_name: {description: Instance profile name., type: str, required: true}
  security_groups: {description: Security group ids., type: list, elements: str, required: true}
  user_data: {description: User data (plain text)., type: str, required: true}
  root_device_name: {description: The AMI's root device., type: str, required: true}
  volume_size: {description: Root volume GiB (encrypted gp3)., type: int, required: true}
extends_documentation_fragment: [amazon.aws.common.modules, amazon.aws.region.modules, amazon.aws.boto3]
"""

from typing import Any

try:
    import botocore
except ImportError:
    pass  # AnsibleAWSModule reports it

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

METADATA_OPTIONS = {"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 1}


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            image_id=dict(type="str", required=True),
            instance_type=dict(type="str", required=True),
            instance_profile_name=dict(type="str", required=True),
            security_groups=dict(type="list", elements="str", required=True),
            user_data=dict(type="str", required=True),
            root_device_name=dict(type="str", required=True),
            volume_size=dict(type="int", required=True),
        ),
        supports_check_mode=True,
    )
    params: dict[str, Any] = module.params
    client = module.client("autoscaling")
    try:
        found = client.describe_launch_configurations(LaunchConfigurationNames=[params["name"]])["LaunchConfigurations"]
        if found:
            module.exit_json(changed=False, name=params["name"], metadata_options=found[0].get("MetadataOptions", {}))
        if not module.check_mode:
            client.create_launch_configuration(
                LaunchConfigurationName=params["name"], ImageId=params["image_id"],
                InstanceType=params["instance_type"], IamInstanceProfile=params["instance_profile_name"],
                SecurityGroups=params["security_groups"], UserData=params["user_data"],
                InstanceMonitoring={"Enabled": True}, MetadataOptions=METADATA_OPTIONS,
                BlockDeviceMappings=[{"DeviceName": params["root_device_name"],
                                      "Ebs": {"VolumeSize": params["volume_size"], "VolumeType": "gp3",
                                              "Encrypted": True, "DeleteOnTermination": True}}])
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        module.fail_json_aws(exc, msg=f"cannot create launch configuration {params['name']}")
    module.exit_json(changed=True, name=params["name"], metadata_options=METADATA_OPTIONS)


if __name__ == "__main__":
    main()
