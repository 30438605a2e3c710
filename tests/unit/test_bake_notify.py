"""A failed bake publishes one short message to --notify-topic (NODESTACK_BAKE_NOTIFY_TOPIC),
preflight failures included; nothing on success unless --notify-always. The topic's ARN is
checked before anything else; a message that cannot be sent is one line and leaves the exit
code alone. The message is read back from an SQS queue subscribed to the topic (moto)."""

from __future__ import annotations

import argparse
import json
import os
import signal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from nodestack.bake import job, notify
from nodestack.bake.target import BakeError, Target

TOPIC_NAME = "nodeapp-bake"


def bake_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    job.add_parser(parser.add_subparsers())
    return parser.parse_args(["bake", *argv])


@pytest.fixture
def mailbox(moto_in_process: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A topic with a queue subscribed to it, and a state directory of the test's own."""
    for var in ("AWS_REGION", "NODESTACK_BAKE_SSH_CIDRS", notify.TOPIC_ENV):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NODESTACK_STATE_DIR", str(tmp_path / "state"))
    sns, sqs = boto3.client("sns", region_name="us-east-1"), boto3.client("sqs", region_name="us-east-1")
    topic = sns.create_topic(Name=TOPIC_NAME)["TopicArn"]
    queue = sqs.create_queue(QueueName="bake-mail")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

    def received() -> list[dict[str, str]]:
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(m["Body"]) for m in messages]

    return {"topic": topic, "received": received, "report": tmp_path / "report.json"}


def test_a_preflight_failure_is_published(mailbox: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    # on AWS without --ssh-cidr: refused in preflight, before any call to AWS
    code = job.run(bake_args("--target", "aws", "--env", "dev", "--notify-topic", mailbox["topic"],
                             "--report", str(mailbox["report"])))
    assert code == 2
    [message] = mailbox["received"]()
    assert message["Subject"] == "nodestack bake FAILED in preflight: dev"
    body = message["Message"]
    assert "nodestack bake of dev on " in body and "(--target aws): FAILED in preflight, exit 2" in body
    assert "no --ssh-cidr given" in body and f"report: {mailbox['report']}" in body
    report = json.loads(mailbox["report"].read_text())
    assert report["notification"] == f"sent to {mailbox['topic']}" and report["status"] == "preflight_failed"
    assert f"bake: notified {mailbox['topic']}" in capsys.readouterr().out


def _baked(monkeypatch: pytest.MonkeyPatch, *results: job.EnvResult) -> None:
    """preflight and the environments' bakes as given: what run() makes of their outcome."""
    loaded = {r.env: SimpleNamespace(env=r.env, note="", app_name="nodeapp") for r in results}
    monkeypatch.setattr(job, "preflight", lambda *args: (Target(False, "us-east-1", {}), loaded))
    by_env = {r.env: r for r in results}
    monkeypatch.setattr(job, "bake_env", lambda target, s, *args: by_env[s.env])


def test_a_failed_environment_is_named_with_its_error_and_packer_log(mailbox: dict[str, Any],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    log = "/state/bake/dev-20300101000000/packer.log"
    _baked(monkeypatch, job.EnvResult("dev", error=f"packer build failed (exit 1); its output is in {log}",
                                      packer_log=log),
           job.EnvResult("prod", ami_id="ami-0123", promoted=True, validation="passed"))
    code = job.run(bake_args("--env", "dev", "--env", "prod", "--notify-topic", mailbox["topic"],
                             "--report", str(mailbox["report"])))
    assert code == 1
    [message] = mailbox["received"]()
    assert message["Subject"] == "nodestack bake FAILED: dev"
    assert f"dev: FAILED: packer build failed (exit 1); its output is in {log}\n  Packer's log: {log}" \
        in message["Message"]
    assert "prod: ok, ami-0123 promoted" in message["Message"]


def test_success_is_quiet_unless_asked(mailbox: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    _baked(monkeypatch, job.EnvResult("dev", ami_id="ami-0123", promoted=True, validation="passed"))
    assert job.run(bake_args("--env", "dev", "--notify-topic", mailbox["topic"])) == 0
    assert mailbox["received"]() == []
    assert job.run(bake_args("--env", "dev", "--notify-topic", mailbox["topic"], "--notify-always")) == 0
    assert [m["Subject"] for m in mailbox["received"]()] == ["nodestack bake ok: dev"]


def test_a_message_that_cannot_be_sent_is_one_line_and_keeps_the_exit_code(
        mailbox: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    missing = mailbox["topic"].replace(TOPIC_NAME, "nodeapp-gone")
    _baked(monkeypatch, job.EnvResult("dev", error="validation failed"))
    assert job.run(bake_args("--env", "dev", "--notify-topic", missing, "--report", str(mailbox["report"]))) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if "not sent" in line]
    assert len(lines) == 1 and lines[0].startswith(f"bake: not sent to {missing}: ")
    assert json.loads(mailbox["report"].read_text())["notification"].startswith(f"not sent to {missing}")


def test_the_topic_comes_from_the_option_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    arn = "arn:aws:sns:eu-west-1:111122223333:nodeapp-bake"
    monkeypatch.delenv(notify.TOPIC_ENV, raising=False)
    assert notify.topic_arn(None) == "" and notify.topic_arn(arn) == arn
    monkeypatch.setenv(notify.TOPIC_ENV, arn)
    assert notify.topic_arn(None) == arn
    assert notify.region_of(arn) == "eu-west-1"


@pytest.mark.parametrize(("given", "named"), [
    ("nodeapp-bake", "--notify-topic 'nodeapp-bake'"),
    ("arn:aws:sqs:eu-west-1:111122223333:nodeapp-bake", "--notify-topic"),
    ("arn:aws:sns:eu-west-1:1111:nodeapp-bake", "--notify-topic"),
    ("arn:aws:sns:eu-west-1:111122223333:nodeapp-bake.fifo", "FIFO topics are not supported"),
])
def test_a_bad_topic_is_refused_naming_the_option_and_the_fix(given: str, named: str) -> None:
    with pytest.raises(BakeError, match="arn:aws:sns:REGION:ACCOUNT_ID:NAME") as caught:
        notify.topic_arn(given)
    assert named in str(caught.value)


def test_a_topic_outside_the_policy_is_warned_about() -> None:
    assert notify.scope_warning("arn:aws:sns:eu-west-1:111122223333:nodeapp-bake", "eu-west-1", ["nodeapp"]) == ""
    assert "nodeapp-... in eu-west-1" in notify.scope_warning("arn:aws:sns:eu-west-1:111122223333:ops", "eu-west-1",
                                                              ["nodeapp"])
    assert notify.scope_warning("arn:aws:sns:us-east-1:111122223333:nodeapp-bake", "eu-west-1", ["nodeapp"])


def test_a_stopped_bake_reports_and_notifies(mailbox: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    def stopped(target: Target, s: Any, *args: Any) -> job.EnvResult:
        os.kill(os.getpid(), signal.SIGTERM)  # as `kill PID` while the environment bakes
        return job.EnvResult(s.env, error="stopped by SIGTERM: packer build failed (exit 1)")

    _baked(monkeypatch, job.EnvResult("dev"))
    monkeypatch.setattr(job, "bake_env", stopped)
    code = job.run(bake_args("--env", "dev", "--notify-topic", mailbox["topic"], "--report", str(mailbox["report"])))
    assert code == 128 + signal.SIGTERM
    assert [m["Subject"] for m in mailbox["received"]()] == ["nodestack bake STOPPED: dev"]
    assert json.loads(mailbox["report"].read_text())["status"] == "stopped"


def test_a_crash_still_reports_and_notifies(mailbox: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(*args: Any) -> job.EnvResult:
        raise KeyError("a bug")

    _baked(monkeypatch, job.EnvResult("dev"))
    monkeypatch.setattr(job, "bake_env", crash)
    with pytest.raises(KeyError):
        job.run(bake_args("--env", "dev", "--notify-topic", mailbox["topic"], "--report", str(mailbox["report"])))
    report = json.loads(mailbox["report"].read_text())
    assert (report["status"], report["error"]) == ("failed", "the bake crashed: KeyError: 'a bug'")
    assert [m["Subject"] for m in mailbox["received"]()] == ["nodestack bake FAILED: dev"]
