#!/usr/bin/python
"""What the settings refer to in the account, read in one call each (read only): the ACM
certificate of the HTTPS listener and the SNS topic of the alarms. The collections' info
modules do more and wait longer: community.aws.acm_certificate_info lists every certificate of
the region and fetches the certificate's body and tags (four calls and two more permissions for
one status), and community.aws.sns_topic_info retries a missing topic's NotFound with backoff
(minutes) before it fails. A missing or unreadable reference is returned, not failed, so the
play names the setting and the fix."""

from __future__ import annotations

from typing import Any

DOCUMENTATION = r"""
module: stack_references
short_description: Read the ACM certificate and the SNS topic the stack's settings name
description:
  - DescribeCertificate of the certificate and GetTopicAttributes of the topic; changes nothing.
  - Each is reported as found (with what preflight checks) or with the error code AWS gave.
options:
  certificate_arn: {description: ACM certificate ARN; empty to skip., type: str, default: ""}
  topic_arn: {description: SNS topic ARN; empty to skip., type: str, default: ""}
extends_documentation_fragment: [amazon.aws.common.modules, amazon.aws.region.modules, amazon.aws.boto3]
"""

RETURN = r"""
certificate:
  description: The certificate (empty when not asked); error is set when it could not be read.
  returned: always
  type: dict
  sample: {"arn": "arn:aws:acm:us-east-1:123456789012:certificate/0a1b", "status": "ISSUED",
           "names": ["example.com", "*.example.com"], "error": ""}
topic:
  description: The topic (empty when not asked); error is set when it could not be read.
  returned: always
  type: dict
  sample: {"arn": "arn:aws:sns:us-east-1:123456789012:alerts", "confirmed": 1, "pending": 0, "error": ""}
"""

try:
    import botocore
except ImportError:
    pass  # AnsibleAWSModule reports it

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

# What AWS answers for a reference that does not exist (or that this account may not see).
_ABSENT = {"ResourceNotFoundException", "NotFound", "NotFoundException", "ValidationException",
           "InvalidParameter", "InvalidParameterException"}
_DENIED = {"AccessDenied", "AccessDeniedException", "AuthorizationError"}


def _code(err: Exception) -> str:
    response = getattr(err, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _read(module: Any, what: str, call: Any) -> tuple[dict[str, Any], str]:
    """call()'s answer and "" or {} and what went wrong (absent, denied: named for the play)."""
    try:
        return call(), ""
    except botocore.exceptions.ClientError as err:
        code = _code(err)
        if code in _ABSENT:
            return {}, "absent"
        if code in _DENIED:
            return {}, f"denied ({code})"
        module.fail_json_aws(err, msg=f"Could not read {what}")
    except botocore.exceptions.BotoCoreError as err:
        module.fail_json_aws(err, msg=f"Could not read {what}")
    return {}, "unreadable"


def certificate(module: Any, arn: str) -> dict[str, Any]:
    found, error = _read(module, f"the certificate {arn}",
                         lambda: module.client("acm").describe_certificate(CertificateArn=arn)["Certificate"])
    names = [found.get("DomainName", "")] + [name for name in found.get("SubjectAlternativeNames", [])
                                             if name != found.get("DomainName")]
    return {"arn": arn, "status": found.get("Status", ""), "names": [name for name in names if name],
            "error": error}


def topic(module: Any, arn: str) -> dict[str, Any]:
    found, error = _read(module, f"the SNS topic {arn}",
                         lambda: module.client("sns").get_topic_attributes(TopicArn=arn)["Attributes"])
    return {"arn": arn, "confirmed": int(found.get("SubscriptionsConfirmed", 0)),
            "pending": int(found.get("SubscriptionsPending", 0)), "error": error}


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec=dict(certificate_arn=dict(type="str", default=""), topic_arn=dict(type="str", default="")),
        supports_check_mode=True,
    )
    cert_arn: str = module.params["certificate_arn"]
    topic_arn: str = module.params["topic_arn"]
    module.exit_json(changed=False,
                     certificate=certificate(module, cert_arn) if cert_arn else {},
                     topic=topic(module, topic_arn) if topic_arn else {})


if __name__ == "__main__":
    main()
