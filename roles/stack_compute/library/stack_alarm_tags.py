#!/usr/bin/python
"""Tags CloudWatch alarms and finds the alarms that carry given tags: amazon.aws's
cloudwatch_metric_alarm sets no tags, and without them teardown could find the stack's
alarms only by name."""

from __future__ import annotations

DOCUMENTATION = r"""
module: stack_alarm_tags
short_description: Tag CloudWatch metric alarms; list the alarms under a name prefix that carry tags
description:
  - Adds O(tags) to each alarm in O(names) that lacks one of them or holds another value (other tags stay).
  - Returns, under RV(tagged), the alarms whose names start with O(name_prefix) and that carry every tag in O(tags).
  - Supports check mode.
options:
  tags: {description: Tags every named alarm must carry (and the found alarms carry)., type: dict, required: true}
  names: {description: Alarms to tag; each must exist., type: list, elements: str, default: []}
  name_prefix: {description: Report the alarms under this name prefix that carry O(tags)., type: str}
extends_documentation_fragment: [amazon.aws.common.modules, amazon.aws.region.modules, amazon.aws.boto3]
"""

RETURN = r"""
tagged:
  description: Names of the alarms under O(name_prefix) that carry every tag of O(tags) (empty without a prefix).
  returned: always
  type: list
  elements: str
  sample: ["nodeapp-dev-cpu-high"]
"""

from typing import Any

try:
    import botocore
except ImportError:
    pass  # AnsibleAWSModule reports it

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule


def _alarm_arns(client: Any, **query: Any) -> dict[str, str]:
    arns: dict[str, str] = {}
    for page in client.get_paginator("describe_alarms").paginate(AlarmTypes=["MetricAlarm"], **query):
        arns.update({alarm["AlarmName"]: alarm["AlarmArn"] for alarm in page["MetricAlarms"]})
    return arns


def _tags(client: Any, arn: str) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in client.list_tags_for_resource(ResourceARN=arn)["Tags"]}


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec=dict(
            tags=dict(type="dict", required=True),
            names=dict(type="list", elements="str", default=[]),
            name_prefix=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    wanted = {str(k): str(v) for k, v in module.params["tags"].items()}
    names: list[str] = module.params["names"]
    client = module.client("cloudwatch")
    changed, tagged = False, []
    try:
        arns = _alarm_arns(client, AlarmNames=names) if names else {}
        missing = sorted(set(names) - set(arns))
        if missing and not module.check_mode:  # in check mode they may be about to be created
            module.fail_json(msg=f"No such alarm to tag: {', '.join(missing)}")
        for name, arn in sorted(arns.items()):
            have = _tags(client, arn)
            add = [{"Key": k, "Value": v} for k, v in wanted.items() if have.get(k) != v]
            if add:
                changed = True
                if not module.check_mode:
                    client.tag_resource(ResourceARN=arn, Tags=add)
        if module.params["name_prefix"]:
            found = _alarm_arns(client, AlarmNamePrefix=module.params["name_prefix"])
            tagged = sorted(name for name, arn in found.items() if wanted.items() <= _tags(client, arn).items())
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as err:
        module.fail_json_aws(err, msg="Could not read or tag the CloudWatch alarms")
    module.exit_json(changed=changed, tagged=tagged)


if __name__ == "__main__":
    main()
