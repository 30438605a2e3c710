"""The request log names each call's service and action for every AWS protocol."""

from __future__ import annotations

import io
import json
from pathlib import Path

from nodestack.local_cloud.request_log import RequestLog, count_calls, describe_call

AUTH = "AWS4-HMAC-SHA256 Credential=testing/20261122/us-east-1/{}/aws4_request, SignedHeaders=host"


def test_query_protocol_action_comes_from_the_form_body() -> None:
    env = {"HTTP_AUTHORIZATION": AUTH.format("ec2"), "CONTENT_TYPE": "application/x-www-form-urlencoded"}
    assert describe_call(env, b"Action=DescribeVpcs&Version=2016-11-15") == ("ec2", "DescribeVpcs")


def test_json_protocol_action_comes_from_the_target_header() -> None:
    env = {"HTTP_AUTHORIZATION": AUTH.format("ssm"), "HTTP_X_AMZ_TARGET": "AmazonSSM.GetParameter"}
    assert describe_call(env, b"{}") == ("ssm", "GetParameter")


def test_rest_protocol_is_named_by_method_and_path() -> None:
    env = {"HTTP_AUTHORIZATION": AUTH.format("route53"), "REQUEST_METHOD": "GET", "PATH_INFO": "/2013-04-01/hostedzone"}
    assert describe_call(env, b"") == ("route53", "GET /2013-04-01/hostedzone")


def test_middleware_logs_and_passes_the_body_on(tmp_path: Path) -> None:
    seen: list[bytes] = []

    def app(environ, start_response):  # type: ignore[no-untyped-def]
        seen.append(environ["wsgi.input"].read())
        return [b"ok"]

    log = tmp_path / "calls.jsonl"
    body = b"Action=CreateVpc&CidrBlock=10.0.0.0%2F16"
    environ = {"HTTP_AUTHORIZATION": AUTH.format("ec2"), "CONTENT_TYPE": "application/x-www-form-urlencoded",
               "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body), "PATH_INFO": "/"}
    RequestLog(app, log)(environ, lambda *a: None)
    assert seen == [body]
    assert json.loads(log.read_text())["action"] == "CreateVpc"
    total, per = count_calls(log)
    assert total == 1 and per == {"ec2:CreateVpc": 1}
    assert count_calls(log, since_offset=log.stat().st_size)[0] == 0
