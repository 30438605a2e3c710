#!/usr/bin/python
"""Which layers of site.yml may be skipped: reads the whole stack in one batch of describe calls
(about 30 for the whole stack, where the layers' modules make about 150 to find it unchanged),
compares each layer's fingerprint and the run's inputs with the record the last converging run
left (an SSM parameter), and after a run that applied layers writes the record anew. Both write
the responses, for verify, to `snapshot` (mode 0600). A layer is recorded only when the run found
it as it left it (its fingerprint the same before and after). The reading and the decision are
src/nodestack/stack_state.py, packed through roles/stack/module_utils/stack_state.py.
The record is bookkeeping, like the run lock: writing it reports changed=false."""

from __future__ import annotations

import datetime
import json
import os
from typing import Any

DOCUMENTATION = r"""
module: stack_converged
short_description: Decide which stack layers are converged, or record that they are
description:
  - C(mode=check) reads the stack's state and returns the layers to skip and to apply.
  - C(mode=record) reads it again and writes the record the next run compares with.
options:
  spec: {description: The naming map and settings the layers' resources are found by., type: dict, required: true}
  inputs: {description: Digest of the settings, the AMI and the roles this run applies., type: str, required: true}
  record_name: {description: The record's SSM parameter., type: str, required: true}
  hours: {description: How long a record allows skipping (0 never)., type: int, default: 24}
  mode: {description: check or record., type: str, choices: [check, record], default: check}
  snapshot: {description: File the responses are written to for verify (empty for none)., type: str, default: ""}
  tags: {description: Tags of the record parameter when it is created., type: dict, default: {}}
  before: {description: The fingerprints the check read found (mode=record)., type: dict, default: {}}
  applied: {description: The layers the run applied (mode=record)., type: list, elements: str, default: []}
extends_documentation_fragment: [amazon.aws.common.modules, amazon.aws.region.modules, amazon.aws.boto3]
"""

RETURN = r"""
skip: {description: The layers to skip (those before the first that is not converged)., returned: always, type: list}
apply: {description: The layers to apply., returned: always, type: list}
why: {description: Why the first layer of apply is applied (empty when none is)., returned: always, type: str}
fingerprints: {description: Each layer's digest of its state., returned: always, type: dict}
calls: {description: How many describe calls the read made., returned: always, type: int}
settled: {description: The layers recorded as converged (mode=record)., returned: when recorded, type: list}
found:
  description: The hosted zone's id, its record sets from the app's name on, the load balancer's DNS name.
  returned: always
  type: dict
"""

try:
    import botocore
except ImportError:
    pass  # AnsibleAWSModule reports it

from ansible.module_utils.stack_state import (
    LAYERS,
    SERVICES,
    decide,
    fingerprints,
    found,
    parse_record,
    read,
    record,
    settled,
    snapshot,
)
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry


def _write_snapshot(path: str, calls: dict[str, Any]) -> None:
    if not path:
        return
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a file left by an earlier run keeps its mode otherwise
    with os.fdopen(fd, "w") as fh:
        json.dump(calls, fh)
    os.replace(path + ".tmp", path)


def _last_record(ssm: Any, name: str, now: datetime.datetime) -> dict[str, Any] | None:
    try:
        return parse_record(ssm.get_parameter(Name=name, aws_retry=True)["Parameter"]["Value"], now)
    except ssm.exceptions.ParameterNotFound:
        return None


def _write_record(ssm: Any, name: str, value: dict[str, Any], tags: dict[str, str]) -> None:
    text = json.dumps(value, sort_keys=True)
    description = "nodestack: what the last converging site.yml left (stack_converged)"
    try:
        # tags only when created (PutParameter takes no tags with Overwrite)
        ssm.put_parameter(Name=name, Value=text, Type="String", Overwrite=False, Description=description,
                          Tags=[{"Key": k, "Value": v} for k, v in sorted(tags.items())], aws_retry=True)
    except ssm.exceptions.ParameterAlreadyExists:
        ssm.put_parameter(Name=name, Value=text, Type="String", Overwrite=True, Description=description,
                          aws_retry=True)


class _Retrying:
    """A client whose calls take amazon.aws's retries (throttling, eventual consistency)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, operation: str) -> Any:
        method = getattr(self._client, operation)
        return lambda **params: method(aws_retry=True, **params)


def run(module: Any) -> None:
    params = module.params
    now = datetime.datetime.now(datetime.timezone.utc)
    ssm = module.client("ssm", retry_decorator=AWSRetry.jittered_backoff())
    try:
        # made once each, before the layers read side by side
        clients = {service: _Retrying(module.client(service, retry_decorator=AWSRetry.jittered_backoff()))
                   for service in SERVICES}
        reader = read(clients.__getitem__, params["spec"])
        layers = fingerprints(reader)
        last = _last_record(ssm, params["record_name"], now)
        if params["mode"] == "record":
            applied_all = set(params["applied"]) >= set(LAYERS)
            full_at = now if applied_all or not last else datetime.datetime.fromisoformat(last["full_at"])
            kept = {layer: fp for layer, fp in settled(params["before"], layers).items()
                    if layer not in reader.unreadable}
            if not module.check_mode:
                _write_record(ssm, params["record_name"], record(params["inputs"], kept, now, full_at),
                              params["tags"])
            _write_snapshot(params["snapshot"], snapshot(reader))
            module.exit_json(changed=False, skip=[], apply=[], why="", fingerprints=layers, calls=len(reader.calls),
                             found=found(reader), settled=sorted(kept))
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as err:
        module.fail_json_aws(err, msg=f"Could not read or record the stack's state ({params['record_name']})")
    decision = decide(last, params["inputs"], layers, reader.unreadable, now,
                      datetime.timedelta(hours=params["hours"]))
    _write_snapshot(params["snapshot"], snapshot(reader))
    module.exit_json(changed=False, skip=decision.skip, apply=decision.apply, why=decision.why,
                     fingerprints=layers, calls=len(reader.calls), found=found(reader))


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec=dict(
            spec=dict(type="dict", required=True),
            inputs=dict(type="str", required=True),
            record_name=dict(type="str", required=True),
            hours=dict(type="int", default=24),
            mode=dict(type="str", choices=["check", "record"], default="check"),
            snapshot=dict(type="str", default=""),
            tags=dict(type="dict", default={}),
            before=dict(type="dict", default={}),
            applied=dict(type="list", elements="str", default=[]),
        ),
        supports_check_mode=True,
    )
    run(module)


if __name__ == "__main__":
    main()
