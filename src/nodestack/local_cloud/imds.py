"""The instance metadata service (IMDS) of the local cloud's instances.

EC2 answers each instance at http://169.254.169.254 about itself, and hands it temporary
credentials of its instance profile's role; every AWS SDK reads them from there. A
container cannot reach that address without extra privileges, so the data plane serves
this on its network's gateway and points the SDKs at it with the variable they all read,
AWS_EC2_METADATA_SERVICE_ENDPOINT (guest_services.py).

As AWS documents it (instancedata-data-retrieval, configuring-instance-metadata-service):
- `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds` (1 to 21600) gives a
  session token; a request carrying `X-Forwarded-For` gets no token (403).
- A GET with a token the instance did not get, or an expired one, is 401; without a token
  it is 401 when the instance requires IMDSv2 (HttpTokens required), else it is answered.
- An instance whose metadata endpoint is disabled gets 403.
- The caller is known by its source address: only the cloud's own containers get answers.
- `iam/security-credentials/<role>` holds credentials of the instance profile's role
  (STS AssumeRole in the emulator, so IAM enforcement sees that role), renewed well
  before they expire.
Only the paths listed below exist here; anything else is 404.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from moto.iam.models import iam_backends
from moto.sts.models import sts_backends
from werkzeug.wrappers import Request, Response

from nodestack.local_cloud.backend_lock import BACKENDS

MAX_TOKEN_TTL = 21600
CREDENTIAL_SECONDS = 6 * 3600
RENEW_BEFORE = 15 * 60  # AWS hands out fresh credentials at least this long before expiry
TOKEN_HEADER = "X-aws-ec2-metadata-token"
TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
InstanceOf = Callable[[str], Any]  # source address -> moto Instance, or None


@dataclass(frozen=True)
class _Credentials:
    access_key_id: str
    secret_access_key: str
    token: str
    expiration: datetime
    updated: datetime


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class MetadataService:
    """WSGI app; `instance_of(address)` maps a caller to its instance (None: not ours)."""

    def __init__(self, instance_of: InstanceOf) -> None:
        self._instance_of = instance_of
        self._tokens: dict[str, tuple[str, float]] = {}  # token -> (instance id, expiry)
        self._credentials: dict[str, _Credentials] = {}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        with BACKENDS:
            response = self._answer(request)
        return response(environ, start_response)

    def _answer(self, request: Request) -> Response:
        instance = self._instance_of(request.remote_addr or "")
        if instance is None:
            return _text("Forbidden: not an instance of this cloud", 403)
        if instance.metadata_options.http_endpoint == "disabled":
            return _text("Forbidden: the instance metadata endpoint is disabled", 403)
        if request.path == "/latest/api/token":
            return self._token(request, instance.id) if request.method == "PUT" else _text("Method Not Allowed", 405)
        if request.method != "GET":
            return _text("Method Not Allowed", 405)
        given = request.headers.get(TOKEN_HEADER)
        if given is not None and not self._valid(given, instance.id):
            return _text("Unauthorized", 401)
        if given is None and instance.metadata_options.http_tokens == "required":
            return _text("Unauthorized", 401)
        body = self._lookup(instance, request.path)
        if body is None:
            return _text("Not Found", 404)
        return _text(body, 200)

    def _token(self, request: Request, instance_id: str) -> Response:
        if "X-Forwarded-For" in request.headers:
            return _text("Forbidden", 403)
        try:
            ttl = int(request.headers.get(TTL_HEADER, ""))
        except ValueError:
            ttl = 0
        if not 1 <= ttl <= MAX_TOKEN_TTL:
            return _text(f"Bad Request: {TTL_HEADER} must be 1 to {MAX_TOKEN_TTL}", 400)
        now = time.monotonic()
        self._tokens = {t: v for t, v in self._tokens.items() if v[1] > now}
        token = secrets.token_urlsafe(40)
        self._tokens[token] = (instance_id, now + ttl)
        response = _text(token, 200)
        response.headers[TTL_HEADER] = str(ttl)
        return response

    def _valid(self, token: str, instance_id: str) -> bool:
        known = self._tokens.get(token)
        return known is not None and known[0] == instance_id and known[1] > time.monotonic()

    def _lookup(self, instance: Any, path: str) -> str | None:
        region = instance.ec2_backend.region_name
        zone = str(instance.placement.zone or "")
        profile = self._profile(instance)
        role = profile.roles[0] if profile is not None and profile.roles else None
        paths: dict[str, Callable[[], str]] = {
            "/latest/meta-data/ami-id": lambda: str(instance.image_id),
            "/latest/meta-data/instance-id": lambda: str(instance.id),
            "/latest/meta-data/instance-type": lambda: str(instance.instance_type),
            "/latest/meta-data/local-hostname": lambda: str(instance.private_dns_name or instance.id),
            "/latest/meta-data/placement/": lambda: "availability-zone\nregion",
            "/latest/meta-data/placement/availability-zone": lambda: zone,
            "/latest/meta-data/placement/region": lambda: region,
            "/latest/dynamic/instance-identity/document": lambda: json.dumps({
                "accountId": instance.ec2_backend.account_id, "architecture": instance.architecture,
                "availabilityZone": zone, "imageId": instance.image_id, "instanceId": instance.id,
                "instanceType": instance.instance_type, "region": region, "version": "2017-09-30"}, indent=2),
        }
        if role is not None:
            paths.update({
                "/latest/meta-data/iam/": lambda: "info\nsecurity-credentials/",
                "/latest/meta-data/iam/info": lambda: json.dumps({
                    "Code": "Success", "LastUpdated": _iso(datetime.now(timezone.utc)),
                    "InstanceProfileArn": profile.arn, "InstanceProfileId": profile.id}, indent=2),
                "/latest/meta-data/iam/security-credentials/": lambda: str(role.name),
                f"/latest/meta-data/iam/security-credentials/{role.name}": lambda: self._role_credentials(
                    instance, role.arn),
            })
        listing = set()
        for known in paths:
            head, sep, _ = known.removeprefix("/latest/meta-data/").partition("/")
            if known.startswith("/latest/meta-data/") and head:
                listing.add(head + sep)
        paths["/latest/meta-data/"] = lambda: "\n".join(sorted(listing))
        answer = paths.get(path)
        return answer() if answer is not None else None

    @staticmethod
    def _profile(instance: Any) -> Any:
        arn = ((instance.iam_instance_profile or {}).get("Arn") if isinstance(instance.iam_instance_profile, dict)
               else None)
        if not arn:
            return None
        iam = iam_backends[instance.ec2_backend.account_id]["aws"]
        try:
            return iam.get_instance_profile_by_arn(arn)
        except Exception:  # noqa: BLE001 - a profile deleted after launch: no credentials, as on AWS
            return None

    def _role_credentials(self, instance: Any, role_arn: str) -> str:
        now = datetime.now(timezone.utc)
        cached = self._credentials.get(instance.id)
        if cached is None or (cached.expiration - now).total_seconds() < RENEW_BEFORE:
            sts = sts_backends[instance.ec2_backend.account_id]["aws"]
            assumed = sts.assume_role(region_name=instance.ec2_backend.region_name, role_session_name=instance.id,
                                      role_arn=role_arn, policy="", duration=CREDENTIAL_SECONDS, external_id="")
            cached = _Credentials(assumed.access_key_id, assumed.secret_access_key, assumed.session_token,
                                  assumed.expiration.replace(tzinfo=assumed.expiration.tzinfo or timezone.utc), now)
            self._credentials[instance.id] = cached
        return json.dumps({"Code": "Success", "LastUpdated": _iso(cached.updated), "Type": "AWS-HMAC",
                           "AccessKeyId": cached.access_key_id, "SecretAccessKey": cached.secret_access_key,
                           "Token": cached.token, "Expiration": _iso(cached.expiration)}, indent=2)


def _text(body: str, status: int) -> Response:
    return Response(body, status=status, content_type="text/plain")
