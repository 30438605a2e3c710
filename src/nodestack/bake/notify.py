"""A failed bake tells someone: one short SNS message to --notify-topic (or
NODESTACK_BAKE_NOTIFY_TOPIC) naming each failed environment with its error and the report, sent
when the run fails, preflight included (on success too with --notify-always). Published with
boto3 and the bake's own credentials (Target.client); a failure to publish is one line of
output and never changes the bake's exit code."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterable

from botocore.exceptions import BotoCoreError, ClientError

from nodestack import names
from nodestack.bake import report as run_report
from nodestack.bake.target import BakeError, Target

TOPIC_ENV = "NODESTACK_BAKE_NOTIFY_TOPIC"
# A standard topic's ARN (a FIFO topic would need a message group: not needed for one message a run).
_TOPIC_ARN = re.compile(r"arn:(?P<partition>aws|aws-cn|aws-us-gov):sns:(?P<region>[a-z]{2}(?:-[a-z]+)+-\d):"
                        r"(?P<account>\d{12}):(?P<name>[A-Za-z0-9_-]{1,256})")
SUBJECT_MAX = 100  # SNS: at most 100 characters, ASCII, one line
ERROR_MAX = 600  # characters of each environment's error in the message
_HEADLINE = {run_report.PREFLIGHT_FAILED: "FAILED in preflight", run_report.FAILED: "FAILED",
             run_report.STOPPED: "STOPPED", run_report.OK: "ok", run_report.RUNNING: "running"}


def topic_arn(given: str | None) -> str:
    """--notify-topic, else NODESTACK_BAKE_NOTIFY_TOPIC; "" for none. BakeError naming the fix
    unless it is an SNS topic's ARN (checked before anything else the bake does)."""
    source, arn = ("--notify-topic", given) if given else (TOPIC_ENV, os.environ.get(TOPIC_ENV, ""))
    arn = arn.strip()
    if arn and not _TOPIC_ARN.fullmatch(arn):
        raise BakeError(f"{source} {arn!r} is not the ARN of a standard SNS topic: give it as "
                        f"arn:aws:sns:REGION:ACCOUNT_ID:NAME, e.g. arn:aws:sns:us-east-1:123456789012:nodeapp-bake "
                        f"(the topic's ARN as SNS shows it; FIFO topics are not supported), or leave it unset")
    return arn


def region_of(arn: str) -> str:
    match = _TOPIC_ARN.fullmatch(arn)
    return match["region"] if match else ""


def scope_warning(arn: str, region: str, apps: Iterable[str]) -> str:
    """Why the bake's policy (policies/bake.yml, statement NotifyBakeFailure) would deny publishing
    to arn: it allows topics named `<app>-...` in the bake's region and account only. "" if none."""
    match = _TOPIC_ARN.fullmatch(arn)
    if not match:  # none given (or refused before)
        return ""
    apps = sorted(apps)
    if match["region"] != region or not any(match["name"].startswith(f"{app}-") for app in apps):
        return (f"--notify-topic {arn}: the bake's policy lets it publish only to topics named "
                f"{' or '.join(f'{app}-...' for app in apps)} in {region}; name the topic so, or grant "
                f"sns:Publish on it to the bake's role")
    return ""


def compose(report: run_report.RunReport) -> tuple[str, str]:
    """The message's subject and body: the outcome, each failed environment with its error and its
    Packer log, the report's path, the CI run."""
    headline = _HEADLINE.get(report.status, report.status)
    failed = report.failed()
    failed_envs = [str(r["env"]) for r in failed] or report.envs
    subject = f"{names.project()} bake {headline}: {', '.join(failed_envs) or 'no environment'}"
    subject = subject.encode("ascii", "replace").decode()[:SUBJECT_MAX]
    lines = [f"{names.project()} bake of {', '.join(report.envs) or 'no environment'} on {report.host} "
             f"(--target {report.target}): {headline}, exit {report.exit_code}",
             f"started {report.started_at}, ended {report.ended_at}"]
    if report.error:
        lines += ["", _clip(report.error)]
    for result in report.results:
        if result in failed:
            lines += ["", f"{result['env']}: FAILED: {_clip(str(result.get('error') or 'not promoted'))}"]
        else:
            lines += ["", f"{result['env']}: ok, {result.get('ami_id')} promoted"]
        if result.get("packer_log"):
            lines.append(f"  Packer's log: {result['packer_log']}")
    lines += ["", f"report: {report.path}"]
    if report.ci_run:
        lines.append(f"run (log, report and Packer's logs as artefacts): {report.ci_run}")
    return subject, "\n".join(lines) + "\n"


def _clip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= ERROR_MAX else text[:ERROR_MAX] + " [...]"


def send(report: run_report.RunReport, arn: str, always: bool, target: Callable[[], Target]) -> None:
    """Publish compose(report) to arn when the run failed (or always); record the outcome in
    report.notification and print it as one line. target: the bake's Target (resolved on demand:
    preflight may have failed before there was one)."""
    if not arn or (report.status == run_report.OK and not always):
        return
    subject, body = compose(report)
    try:
        target().client("sns", region=region_of(arn)).publish(TopicArn=arn, Subject=subject, Message=body)
    except (BakeError, BotoCoreError, ClientError) as exc:
        report.notification = f"not sent to {arn}: {' '.join(str(exc).split())}"
        print(f"bake: {report.notification}", file=sys.stderr)
        return
    report.notification = f"sent to {arn}"
    print(f"bake: notified {arn}")
