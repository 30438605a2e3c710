#!/usr/bin/python
"""Preflight's permission check: simulates, as the caller, every call a run's deployer policies
(policies/, rendered by nodestack.permissions) grant, and fails naming what is missing before the
run creates anything. Reads only."""

from __future__ import annotations

DOCUMENTATION = r"""
module: stack_permissions
short_description: Check the caller may make every call of a run, with iam:SimulatePrincipalPolicy
description:
  - Renders the run's policies of policies/ for O(app), the caller's account and the region, and
    simulates each statement's actions and resources as the caller's IAM user or role.
  - Fails naming every denied action, before anything is created.
  - The account's root user and a caller the account does not know (the local cloud without IAM
    enforcement) are not checked; RV(unchecked) says why.
options:
  run:
    description: The run whose policies apply (stack covers site.yml, rollout, blue/green and teardown).
    type: str
    required: true
    choices: [stack, verify, bake]
  app: {description: The app's name (stack_app_name)., type: str, required: true}
  caller_arn: {description: The caller's ARN when already read (else GetCallerIdentity)., type: str, default: ""}
extends_documentation_fragment: [amazon.aws.common.modules, amazon.aws.region.modules, amazon.aws.boto3]
"""

RETURN = r"""
principal: {description: The IAM user or role checked., type: str, returned: always}
checked: {description: Number of statements simulated., type: int, returned: always}
unchecked: {description: Why the permissions were not checked, empty when they were., type: str, returned: always}
"""

try:
    import botocore  # noqa: F401 - AnsibleAWSModule reports it missing
except ImportError:
    pass

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from nodestack import permissions


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec=dict(
            run=dict(type="str", required=True, choices=list(permissions.NEEDS)),
            app=dict(type="str", required=True),
            caller_arn=dict(type="str", default=""),
        ),
        supports_check_mode=True,
    )
    run, app = module.params["run"], module.params["app"]
    try:
        local = permissions.on_loopback(module.params.get("endpoint_url"))
        if module.params["caller_arn"]:  # the run has read it already (tasks/account.yml)
            scope, verdict = permissions.check_as(module.params["caller_arn"], module.client("iam"), run, app,
                                                  module.region, local)
        else:
            scope, verdict = permissions.check(module.client("sts"), module.client("iam"), run, app, module.region,
                                               local=local)
    except permissions.PolicyError as exc:
        module.fail_json(msg=str(exc))
    except botocore.exceptions.ClientError as exc:
        module.fail_json_aws(exc, msg=f"cannot check the {run} run's permissions")
    if verdict.denied:
        module.fail_json(msg=verdict.message(run, scope), principal=verdict.principal,
                         denied=[str(d) for d in verdict.denied])
    module.exit_json(changed=False, principal=verdict.principal, unchecked=verdict.unchecked,
                     checked=verdict.checked)


if __name__ == "__main__":
    main()
