"""Gaps of moto's request authorisation, met only with IAM enforced (`local up --enforce-iam`).

- moto builds the action it authorises from the request's signing name (the credential scope's
  service). CloudWatch signs as `monitoring`, so moto asks for `monitoring:PutMetricAlarm`, an
  action no policy can grant. AWS's Service Authorization Reference gives CloudWatch's actions
  the prefix `cloudwatch`, and the Resource Groups Tagging API's (signing as `tagging`) the
  prefix `tag` (tag:GetResources); the other services the project calls sign with their IAM prefix.
- moto recomputes a request's signature with its query parameters as the body when the body is
  empty. For a GET with a query string (Route53 ListHostedZonesByName, ListResourceRecordSets
  with a start name) the signature then never matches: SigV4 signs the query string in the
  canonical request and an empty payload.
- moto authorises most calls against the resource `*`, so a policy scoped to resources (an
  instance role's SSM parameters) never matches. AWS authorises an SSM parameter call against
  the parameter's ARN, `arn:aws:ssm:<region>:<account>:parameter/<name>` (GetParametersByPath:
  the path's). moto's own hook for it, `_determine_resource`, exists for SQS, IAM roles and STS;
  this adds it for SSM's calls on one parameter or path. GetParameters with several names stays
  on `*`: moto authorises one resource per call.
"""

from __future__ import annotations

from typing import Any

from botocore.awsrequest import AWSRequest
from moto.iam.access_control import IAMRequestBase
from moto.ssm.responses import SimpleSystemManagerResponse

# signing name -> IAM service prefix, where the two differ
IAM_PREFIX = {"monitoring": "cloudwatch", "tagging": "tag"}
# methods whose parameters travel in the query string (rest-xml and rest-json protocols)
_NO_BODY = {"GET", "HEAD", "DELETE"}


def apply_action_prefix() -> None:
    original = IAMRequestBase.__init__

    def init(self: IAMRequestBase, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        service, _, action = self._action.partition(":")
        if service in IAM_PREFIX:
            self._action = f"{IAM_PREFIX[service]}:{action}"

    IAMRequestBase.__init__ = init  # type: ignore[method-assign]


def apply_query_signature() -> None:
    original = IAMRequestBase._create_aws_request

    def create(self: IAMRequestBase) -> AWSRequest:
        request = original(self)
        if self._method.upper() in _NO_BODY and not self._body:
            request.data = b""
        return request

    IAMRequestBase._create_aws_request = create  # type: ignore[method-assign]


def parameter_arn(region: str, account: str, name: str) -> str:
    if name.startswith("arn:"):
        return name
    return f"arn:aws:ssm:{region}:{account}:parameter/{name.lstrip('/')}"


def apply_ssm_parameter_resource() -> None:
    def determine(self: SimpleSystemManagerResponse) -> str:
        names = self._get_param("Names")
        name = self._get_param("Name") or self._get_param("Path") or (names[0] if names and len(names) == 1 else None)
        return parameter_arn(self.region, self.current_account, name) if isinstance(name, str) else "*"

    SimpleSystemManagerResponse._determine_resource = determine  # type: ignore[attr-defined]
