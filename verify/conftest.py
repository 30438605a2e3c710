"""Checks of a deployed stack against its declared settings (run by playbooks/verify.yml).

The playbook passes the settings as JSON in NODESTACK_VERIFY; boto3 reads the same
endpoint and credentials as the playbooks. Only AWS APIs are called: never the instances.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Generator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
)

from nodestack.stack_state import call_key


@pytest.fixture(scope="session")
def declared() -> dict[str, Any]:
    raw = os.environ.get("NODESTACK_VERIFY")
    if not raw:
        pytest.exit("NODESTACK_VERIFY is not set: run playbooks/verify.yml (it passes the stack's settings)", 2)
    return json.loads(raw)


@pytest.fixture(scope="session")
def aws(declared: dict[str, Any]) -> Any:
    conn = declared["connection"]
    session = boto3.Session(profile_name=conn.get("profile") or None, region_name=conn["region"],
                            aws_access_key_id=conn.get("access_key") or None,
                            aws_secret_access_key=conn.get("secret_key") or None)

    _context["endpoint"] = conn.get("endpoint_url") or "AWS"

    def client(service: str, live: bool = False) -> Any:
        """A client of service; unless live (a wait), answering the batched read's calls from its responses."""
        made = session.client(service, endpoint_url=conn.get("endpoint_url") or None)
        made.meta.events.register("before-call", lambda model, **_: _context.update(
            call=f"{model.service_model.endpoint_prefix}:{model.name}"))
        return Recorded(service, made, recorded) if recorded and not live else made

    recorded = _recorded()
    return client


def _recorded() -> dict[str, Any]:
    """site.yml's batched read of the stack after its last change (NODESTACK_VERIFY_STATE), by call."""
    path = os.environ.get("NODESTACK_VERIFY_STATE")
    if not path or not Path(path).is_file():
        return {}
    return {key: response for key, response in json.loads(Path(path).read_text()).items() if "Error" not in response}


class Recorded:
    """A boto3 client answering each call the batched read made from its response, every other call live."""

    def __init__(self, service: str, client: Any, responses: dict[str, Any]) -> None:
        self._service, self._client, self._responses = service, client, responses

    def __getattr__(self, name: str) -> Any:
        live = getattr(self._client, name)
        if name not in self._client.meta.method_to_api_mapping:  # exceptions, meta, paginators: the client's
            return live

        def call(**params: Any) -> Any:
            found = self._responses.get(call_key(self._service, name, params), None)
            if found is None:
                return live(**params)
            _context.update(call=f"{self._service}:{self._client.meta.method_to_api_mapping[name]} (site.yml's read)")
            return copy.deepcopy(found)

        return call


# Failures that say nothing about the stack: the AWS endpoint or the credentials. Reported in
# one line naming the call, exit status 3, never as drift (playbooks/verify.yml reads both).
UNREACHABLE = (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError)
THROTTLED = {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException",
             "RequestThrottled", "SlowDown"}
EXPIRED = {"ExpiredToken", "ExpiredTokenException", "RequestExpired", "TokenRefreshRequired"}
DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "InvalidClientTokenId",
          "UnrecognizedClientException", "AuthFailure", "SignatureDoesNotMatch"}
NOT_DRIFT = 3
_context = {"endpoint": "AWS", "call": "an AWS call"}  # the last call made (service:Operation), and where
_problems: pytest.StashKey[dict[str, str]] = pytest.StashKey()  # kind -> its first occurrence
_log: pytest.StashKey[Path] = pytest.StashKey()


def not_drift(exc: BaseException) -> tuple[str, str] | None:
    """What stopped the checks and one line naming it, when it is the endpoint or the credentials."""
    call, where = _context["call"], _context["endpoint"]
    if isinstance(exc, UNREACHABLE):
        return "unreachable", (f"cannot reach {where} ({call}: {exc}); check the endpoint and the network, "
                               "then re-run verify.yml")
    if isinstance(exc, (NoCredentialsError, ProfileNotFound)):
        return "credentials", f"no usable credentials for {where} ({call}: {exc}); set aws_profile or the keys"
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in THROTTLED:
            return "throttled", f"{call} on {where} was throttled beyond the retries ({code}); re-run verify.yml later"
        if code in EXPIRED:
            return "expired", (f"the credentials for {where} have expired ({call}: {code}); renew them and "
                               "re-run verify.yml")
        if code in DENIED:
            return "denied", (f"{call} on {where} was denied ({code}): grant it to the identity running verify.yml "
                              "(its read-only policy)")
    return None


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_problems] = {}
    log = os.environ.get("NODESTACK_VERIFY_LOG")
    if log:
        path = config.stash[_log] = Path(log)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
        path.chmod(0o600)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport,
                                                                                            pytest.TestReport]:
    report = yield
    if call.excinfo is not None:
        problem = not_drift(call.excinfo.value)
        if problem:
            item.config.stash[_problems].setdefault(*problem)
    if report.failed and _log in item.config.stash:
        with item.config.stash[_log].open("a") as log:
            log.write(f"=== {report.nodeid} ({report.when})\n{report.longreprtext}\n\n")
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    if session.config.stash[_problems]:
        session.exitstatus = NOT_DRIFT


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    for problem in config.stash[_problems].values():
        terminalreporter.write_line(f"verify: could not check the stack: {problem}")
    if _log in config.stash and config.stash[_log].stat().st_size:
        terminalreporter.write_line(f"verify: details in {config.stash[_log]}")
