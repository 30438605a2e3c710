#!/usr/bin/python
"""Which of the given instance types EC2 offers in which of the given zones (read only):
amazon.aws has no module for DescribeInstanceTypeOfferings, and without it a misspelt type
(t3.mcro) is found only when the Auto Scaling group fails to launch, after the stack exists."""

from __future__ import annotations

DOCUMENTATION = r"""
module: stack_instance_type_offerings
short_description: List the zones that offer each of the given EC2 instance types
description:
  - Reads EC2's instance type offerings by availability zone; changes nothing.
options:
  instance_types: {description: Instance types to look up., type: list, elements: str, required: true}
  zones: {description: Availability zone names to look in., type: list, elements: str, required: true}
extends_documentation_fragment: [amazon.aws.common.modules, amazon.aws.region.modules, amazon.aws.boto3]
"""

RETURN = r"""
offerings:
  description: Each requested instance type, with the requested zones that offer it (empty when none does).
  returned: always
  type: dict
  sample: {"t3.small": ["us-east-1a", "us-east-1b"], "t3.mcro": []}
"""

try:
    import botocore
except ImportError:
    pass  # AnsibleAWSModule reports it

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec=dict(
            instance_types=dict(type="list", elements="str", required=True),
            zones=dict(type="list", elements="str", required=True),
        ),
        supports_check_mode=True,
    )
    types: list[str] = module.params["instance_types"]
    zones: list[str] = module.params["zones"]
    offerings: dict[str, list[str]] = {name: [] for name in types}
    client = module.client("ec2")
    try:
        pages = client.get_paginator("describe_instance_type_offerings").paginate(
            LocationType="availability-zone",
            Filters=[{"Name": "instance-type", "Values": types}, {"Name": "location", "Values": zones}],
        )
        for page in pages:
            for offering in page["InstanceTypeOfferings"]:
                offerings.setdefault(offering["InstanceType"], []).append(offering["Location"])
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as err:
        module.fail_json_aws(err, msg="Could not read the instance type offerings")
    module.exit_json(changed=False, offerings={name: sorted(found) for name, found in offerings.items()})


if __name__ == "__main__":
    main()
